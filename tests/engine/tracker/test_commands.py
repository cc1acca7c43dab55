"""Operator commands `status`, `unlock` and `forget` on both backends."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import re

import pytest

from engine.step_message import written_message
from engine.tracker.base import JobRow
from engine.tracker.commands import (
    MIN_MESSAGE,
    add_forget_arguments,
    add_status_arguments,
    add_unlock_arguments,
    cmd_forget,
    cmd_status,
    cmd_unlock,
    duration,
    fmt_duration,
    operator,
)
from tests.engine.tracker.conftest import Backend


def status(backend: Backend, *argv: str) -> str:
    p = argparse.ArgumentParser()
    add_status_arguments(p)
    out = io.StringIO()
    assert cmd_status(p.parse_args(list(argv)), backend.config(), out=out) == 0
    return out.getvalue()


def _asking(command, add_arguments, backend: Backend, answer: str, argv: tuple[str, ...]) -> tuple[int, str]:
    """(exit code, output) of a command that asks for confirmation, answered with ``answer``."""
    p = argparse.ArgumentParser()
    add_arguments(p)
    out = io.StringIO()
    code = command(p.parse_args(list(argv)), backend.config(), out=out, inp=io.StringIO(answer))
    return code, out.getvalue()


def unlock(backend: Backend, answer: str, *argv: str) -> tuple[int, str]:
    return _asking(cmd_unlock, add_unlock_arguments, backend, answer, argv)


def forget(backend: Backend, answer: str, *argv: str) -> tuple[int, str]:
    return _asking(cmd_forget, add_forget_arguments, backend, answer, argv)


def seed(backend: Backend) -> None:
    t = backend.tracker()
    for job in ("preprocess_2020-08-05", "preprocess_2020-08-06", "analyze_2020-08-06",
                "preprocess.load_2020-08-06"):
        t.set_status(job, "success", f"ok {job}")
    assert t.acquire("analyze_2020-08-07", lease_seconds=60, holder_host="worker-3", holder_pid=77)


def first_column(table: str) -> list[str]:
    return [line.split()[0] for line in table.strip().splitlines()[1:]]


def test_status_table_filters(backend: Backend) -> None:
    seed(backend)
    table = status(backend)
    assert table.splitlines()[0].split()[:2] == ["JOB_ID", "STATUS"]
    assert first_column(table) == ["analyze_2020-08-06", "analyze_2020-08-07", "preprocess_2020-08-05",
                                   "preprocess_2020-08-06"]
    held = next(line for line in table.splitlines() if line.startswith("analyze_2020-08-07"))
    assert "running" in held and "held" in held and "worker-3 (pid 77)" in held
    assert first_column(status(backend, "--pipeline", "preprocess", "--start", "2020-08-06")) == [
        "preprocess_2020-08-06"]
    assert first_column(status(backend, "--end", "2020-08-06", "--steps", "--pipeline", "preprocess")) == [
        "preprocess.load_2020-08-06", "preprocess_2020-08-05", "preprocess_2020-08-06"]
    assert "no jobs" in status(backend, "--pipeline", "nothing")


def test_status_shows_a_step_rows_record_in_words_and_json_as_kept(backend: Backend) -> None:
    t = backend.tracker()
    kept = written_message({"trade": ["trade_dt=2020-08-06"]}, {"trade": 1500}, {"trade": "trade"},
                           {"csv/2020-08-06": "3:4000000:ab:17"})
    t.set_status("preprocess.eod_2020-08-06", "success", kept)
    (line,) = status(backend, "--steps").splitlines()[1:]
    assert line.endswith("wrote trade 1,500 rows; read csv/2020-08-06 (3 files, 4.0 MB)"), line
    (row,) = json.loads(status(backend, "--steps", "--json"))
    assert row["message"] == kept  # scripts get what the tracker keeps


def test_status_json(backend: Backend) -> None:
    seed(backend)
    rows = json.loads(status(backend, "--json", "--pipeline", "analyze"))
    assert [(r["job_id"], r["status"], r["lock"]) for r in rows] == [
        ("analyze_2020-08-06", "success", "-"), ("analyze_2020-08-07", "running", "held")]
    assert rows[1]["holder_pid"] == 77 and rows[0]["message"] == "ok analyze_2020-08-06"


def test_status_json_times_carry_the_utc_offset(backend: Backend) -> None:
    seed(backend)
    rows = {r["job_id"]: r for r in json.loads(status(backend, "--json", "--pipeline", "analyze"))}
    held = rows["analyze_2020-08-07"]
    tracked = backend.tracker().get("analyze_2020-08-07")
    assert tracked is not None and tracked.updated_time is not None and tracked.lease_expires is not None
    for key, value in (("updated_time", tracked.updated_time), ("started_time", tracked.started_time),
                       ("lease_expires", tracked.lease_expires)):
        assert held[key].endswith("+00:00"), (key, held[key])
        parsed = dt.datetime.fromisoformat(held[key])
        assert parsed.utcoffset() == dt.timedelta(0) and parsed.replace(tzinfo=None) == value
    assert rows["analyze_2020-08-06"]["lease_expires"] is None


def test_unlock_asks_and_records_who(backend: Backend) -> None:
    seed(backend)
    job = "analyze_2020-08-07"
    code, text = unlock(backend, "n\n", job)
    assert code == 1 and "[y/N]" in text and "worker-3 (pid 77)" in text
    assert backend.tracker().get(job).locked  # type: ignore[union-attr]
    code, text = unlock(backend, "", job)  # no answer (no terminal) is a no
    assert code == 1
    code, text = unlock(backend, "y\n", job)
    assert code == 0, text
    row = backend.tracker().get(job)
    assert row is not None and not row.locked and row.status == "failed"
    assert row.message is not None and row.message.startswith(f"unlocked by {operator()}")
    assert "worker-3 (pid 77)" in row.message


def test_unlock_says_an_old_lock_without_lease_has_none(backend: Backend) -> None:
    """It said "lease still valid (expires -)" of a lock that never expires by itself."""
    seed(backend)
    job = "analyze_2020-08-07"
    backend.execute(f"UPDATE {backend.table} SET lease_expires = NULL WHERE job_id = ?", (job,))
    code, text = unlock(backend, "n\n", job)
    assert code == 1 and "; lease none (an older version's lock: it never expires by itself)" in text, text
    assert "still valid" not in text and "expires -" not in text


def test_unlock_yes_unknown_and_not_locked(backend: Backend) -> None:
    seed(backend)
    code, text = unlock(backend, "", "analyze_2020-08-07", "--yes")
    assert code == 0 and "[y/N]" not in text
    assert not backend.tracker().get("analyze_2020-08-07").locked  # type: ignore[union-attr]
    code, text = unlock(backend, "", "analyze_2020-08-07", "--yes")
    assert code == 0 and "not locked" in text
    code, text = unlock(backend, "", "nope_2020-01-01", "--yes")
    assert code == 2 and "no job nope_2020-01-01" in text


def test_a_lock_whose_process_on_this_host_is_gone_says_so(backend: Backend) -> None:
    import socket
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a real process of this host that has ended (its pid is not reused this quickly)
    t = backend.tracker()
    assert t.acquire("preprocess_2020-08-07", lease_seconds=600, holder_host=socket.gethostname(),
                     holder_pid=child.pid)
    assert t.acquire("preprocess_2020-08-10", lease_seconds=600, holder_host="worker-3", holder_pid=child.pid)
    lines = {ln.split()[0]: ln for ln in status(backend).splitlines()[1:]}
    assert " held (process gone) " in lines["preprocess_2020-08-07"]
    assert " held " in lines["preprocess_2020-08-10"] and "gone" not in lines["preprocess_2020-08-10"]
    code, out = unlock(backend, "n\n", "preprocess_2020-08-07")
    assert code == 1 and "its process is not running on this host any more" in out
    assert "not running" not in unlock(backend, "n\n", "preprocess_2020-08-10")[1]  # another host: unknown


def test_forget_deletes_the_job_and_its_step_rows_after_confirmation(backend: Backend) -> None:
    seed(backend)
    t = backend.tracker()
    t.set_status("preprocess.ingest_2020-08-06", "failed", "no raw input")
    code, text = forget(backend, "n\n", "preprocess_2020-08-06")
    assert code == 1 and "preprocess_2020-08-06: status success" in text and "2 step row(s)" in text
    assert text.rstrip().endswith("nothing deleted") and t.get("preprocess_2020-08-06") is not None
    code, text = forget(backend, "y\n", "preprocess_2020-08-06")
    assert code == 0, text
    assert f"forgot preprocess_2020-08-06 and 2 step row(s) (by {operator()})" in text
    assert [r.job_id for r in t.list_jobs()] == ["analyze_2020-08-06", "analyze_2020-08-07", "preprocess_2020-08-05"]


def test_forget_refuses_a_locked_job_a_step_id_and_an_unknown_job(backend: Backend) -> None:
    seed(backend)
    t = backend.tracker()
    code, text = forget(backend, "", "analyze_2020-08-07", "--yes")
    assert code == 4 and "locked by worker-3 (pid 77)" in text and "nothing deleted" in text
    assert t.get("analyze_2020-08-07") is not None
    code, text = forget(backend, "", "preprocess.load_2020-08-06", "--yes")
    assert code == 2 and "is not a pipeline job id" in text and t.get("preprocess.load_2020-08-06") is not None
    code, text = forget(backend, "", "nosuch_2020-08-06", "--yes")
    assert code == 2 and text.startswith("no job nosuch_2020-08-06 in ")
    # the statement itself keeps every row of a job a run holds (a run that starts after the command looked)
    assert t.forget("analyze_2020-08-07", ["analyze.load_2020-08-07"]) == []
    assert t.forget("preprocess_2020-08-05") == ["preprocess_2020-08-05"]


KILLED = "preprocess_2024-01-11"  # a run killed with -9 in its step ingest, after load succeeded


def killed_run(backend: Backend) -> str:
    """The rows a `kill -9` leaves: the job locked by the dead run, its step ingest 'running', load 'success';
    and rows that are no business of an unlock of that job. Returns the dead run's lock id."""
    t = backend.tracker()
    lease = t.acquire(KILLED, lease_seconds=600, holder_host="worker-3", holder_pid=77, run_id="run-9")
    assert lease is not None
    t.set_status("preprocess.load_2024-01-11", "success", '{"rows": {"trade": 10}}', run_id="run-9", fence=lease)
    t.set_status("preprocess.ingest_2024-01-11", "running", run_id="run-9", fence=lease)
    t.set_status("preprocess.ingest_2024-01-12", "running", run_id="run-10")  # another date
    t.set_status("analyze.load_2024-01-11", "running", run_id="run-11")  # another pipeline
    return lease.lock_id


def test_unlock_marks_the_steps_its_run_left_running_failed(backend: Backend) -> None:
    killed_run(backend)
    t = backend.tracker()
    code, text = unlock(backend, "y\n", KILLED)
    assert code == 0, text
    assert "its step row(s) still running, to be marked failed with it: preprocess.ingest_2024-01-11\n" in text
    assert "step(s) running -> failed: preprocess.ingest_2024-01-11;" in text
    job, step = t.get(KILLED), t.get("preprocess.ingest_2024-01-11")
    assert job is not None and (job.status, job.locked) == ("failed", False)
    assert step is not None and (step.status, step.run_id, step.locked) == ("failed", "run-9", False)
    assert step.message == f"its run was {job.message}"
    assert step.message is not None and step.message.startswith(f"its run was unlocked by {operator()} at ")
    # its other steps and the rows of other dates and pipelines stay as they were
    assert t.get("preprocess.load_2024-01-11").status == "success"  # type: ignore[union-attr]
    assert t.get("preprocess.ingest_2024-01-12").status == "running"  # type: ignore[union-attr]
    assert t.get("analyze.load_2024-01-11").status == "running"  # type: ignore[union-attr]
    shown = {line.split()[0]: line.split()[1] for line in status(backend, "--steps", "--pipeline", "preprocess",
                                                                 "--start", "2024-01-11", "--end",
                                                                 "2024-01-11").splitlines()[1:]}
    assert shown == {KILLED: "failed", "preprocess.ingest_2024-01-11": "failed",
                     "preprocess.load_2024-01-11": "success"}


def test_unlock_leaves_the_steps_alone_when_the_lock_changed_meanwhile(backend: Backend) -> None:
    """While the question waits, the dead run's lease expires and a new run takes the job over: its lock is no
    longer the one shown, so neither the job nor its steps are touched (the new run owns them)."""
    killed_run(backend)
    t = backend.tracker()

    class TakeOverThenYes(io.StringIO):
        def readline(self, size: int | None = -1) -> str:
            assert t.unlock(KILLED, "expired meanwhile")
            assert t.acquire(KILLED, lease_seconds=600, holder_host="worker-4", holder_pid=88, run_id="run-12")
            return "y\n"

    p = argparse.ArgumentParser()
    add_unlock_arguments(p)
    out = io.StringIO()
    code = cmd_unlock(p.parse_args([KILLED]), backend.config(), out=out, inp=TakeOverThenYes())
    assert code == 1 and "the lock changed meanwhile" in out.getvalue(), out.getvalue()
    job = t.get(KILLED)
    assert job is not None and (job.status, job.holder_host, job.locked) == ("running", "worker-4", True)
    assert t.get("preprocess.ingest_2024-01-11").status == "running"  # type: ignore[union-attr]


def test_unlock_refuses_a_step_id_naming_its_job(backend: Backend) -> None:
    killed_run(backend)
    t = backend.tracker()
    before = t.get("preprocess.ingest_2024-01-11")
    code, text = unlock(backend, "", "preprocess.ingest_2024-01-11", "--yes")
    assert code == 2, text
    assert text.startswith("'preprocess.ingest_2024-01-11' is a step's id, not a pipeline job's")
    assert f"`run_pipeline.py unlock {KILLED}`" in text
    assert t.get("preprocess.ingest_2024-01-11") == before and t.get(KILLED).locked  # type: ignore[union-attr]
    code, text = unlock(backend, "", "preprocess.nosuch_2024-01-11", "--yes")  # refused alike, row or not
    assert code == 2 and "is a step's id" in text


def test_status_refuses_filters_that_can_never_match(backend: Backend) -> None:
    """`status --pipeline analyz` and a range ending before it starts printed "no jobs" and exit 0."""
    import pytest

    from engine.errors import TickflowError

    t = backend.tracker()
    t.set_status("analyze_2024-01-05", "success")
    t.set_status("preprocess_2024-01-05", "success")
    p = argparse.ArgumentParser()
    add_status_arguments(p)
    with pytest.raises(TickflowError, match="no job of pipeline 'analyz' in .*; did you mean 'analyze'\\? "
                                            r"\(pipelines there: analyze, preprocess\)"):
        cmd_status(p.parse_args(["--pipeline", "analyz"]), backend.config(), out=io.StringIO())
    with pytest.raises(TickflowError, match="--start 2024-01-12 is after --end 2024-01-11"):
        cmd_status(p.parse_args(["--start", "2024-01-12", "--end", "2024-01-11"]), backend.config(),
                   out=io.StringIO())
    assert "analyze_2024-01-05" in status(backend, "--pipeline", "analyze")


def cells(table: str) -> dict[str, dict[str, str]]:
    """The table's rows by job id, each {header: cell}, cut at the header's column starts (MESSAGE to the end);
    the lines under a row (a failed row's whole message, its log) are left out."""
    header, *lines = table.rstrip("\n").splitlines()
    names = re.split(" {2,}", header.strip())
    starts = [header.index(n) for n in names]
    rows = {}
    for line in lines:
        if line.startswith(" "):
            continue
        bounds = [*starts[1:], None]
        row = {n: line[s:e].strip() for n, s, e in zip(names, starts, bounds, strict=True)}
        rows[row["JOB_ID"]] = row
    return rows


def set_times(backend: Backend, job: str, started: str | None, updated: str) -> None:
    backend.execute(f"UPDATE {backend.table} SET started_time = ?, updated_time = ? WHERE job_id = ?",
                    (started, updated, job))


def test_status_shows_when_each_job_started_and_how_long_it_ran(backend: Backend) -> None:
    """The table had no start time and no duration; a failed or terminated run's duration was nowhere."""
    t = backend.tracker()
    t.set_status("preprocess_2020-08-06", "success", "success in 83.2s")
    set_times(backend, "preprocess_2020-08-06", "2026-12-07 06:00:00", "2026-12-07 06:01:23.400")
    t.set_status("analyze_2020-08-06", "failed", "terminated by SIGTERM")
    set_times(backend, "analyze_2020-08-06", "2026-12-07 06:02:00", "2026-12-07 08:07:30")
    t.set_status("analyze.trade_ma_2020-08-06", "stale", "its input step trades was recomputed")  # marked later
    set_times(backend, "analyze.trade_ma_2020-08-06", "2026-12-07 06:02:00", "2026-12-08 09:00:00")
    t.set_status("analyze_2020-08-05", "success")  # a row from before start times were kept
    set_times(backend, "analyze_2020-08-05", None, "2026-12-06 06:00:00")
    started = (t.now() - dt.timedelta(minutes=10, seconds=30)).strftime("%Y-%m-%d %H:%M:%S")
    assert t.acquire("analyze_2020-08-07", lease_seconds=600, holder_host="worker-3", holder_pid=77)
    assert t.acquire("analyze_2020-08-08", lease_seconds=600, holder_host="worker-3", holder_pid=78)
    backend.execute(f"UPDATE {backend.table} SET started_time = ? WHERE job_id IN (?, ?)",
                    (started, "analyze_2020-08-07", "analyze_2020-08-08"))
    backend.execute(f"UPDATE {backend.table} SET lease_expires = ? WHERE job_id = ?",  # its run died
                    ("2026-01-01 00:00:00", "analyze_2020-08-08"))
    t.set_status("analyze.quotes_2020-08-07", "running")
    backend.execute(f"UPDATE {backend.table} SET started_time = ? WHERE job_id = ?",
                    (started, "analyze.quotes_2020-08-07"))
    table = status(backend, "--steps")
    assert re.split(" {2,}", table.splitlines()[0])[:4] == ["JOB_ID", "STATUS", "STARTED (UTC)", "DURATION"]
    rows = cells(table)
    shown = {job: (r["STARTED (UTC)"], r["DURATION"]) for job, r in rows.items()}
    assert shown["preprocess_2020-08-06"] == ("2026-12-07 06:00:00", "1m 23s")
    assert shown["analyze_2020-08-06"] == ("2026-12-07 06:02:00", "2h 05m")  # failed runs too
    assert shown["analyze.trade_ma_2020-08-06"][1] == "-"  # its end is not when it was marked stale
    assert shown["analyze_2020-08-05"] == ("-", "-")
    for job in ("analyze_2020-08-07", "analyze.quotes_2020-08-07"):  # elapsed so far, under a live lock
        assert shown[job][1].startswith("10m 3") and shown[job][1].endswith(" so far"), shown[job]
    assert shown["analyze_2020-08-08"][1] == "-"  # 'running' with an expired lease: nobody knows when it ended
    by_id = {r["job_id"]: r for r in json.loads(status(backend, "--json"))}
    assert by_id["analyze_2020-08-06"]["duration_seconds"] == 7530
    assert by_id["preprocess_2020-08-06"]["duration_seconds"] == pytest.approx(83.4)
    assert by_id["analyze_2020-08-05"]["duration_seconds"] is None
    assert 629 <= by_id["analyze_2020-08-07"]["duration_seconds"] < 700


def test_unlock_ends_a_row_at_no_known_time() -> None:
    """An unlock sets updated_time to its own moment: the dead run's duration is not until then."""
    started, unlocked = dt.datetime(2026, 12, 7, 6), dt.datetime(2026, 12, 9, 10)
    row = JobRow("analyze_2020-08-06", "failed", unlocked, None, started_time=started,
                 message=f"unlocked by {operator()} at 2026-12-09 10:00:00 UTC; was held by worker-3 (pid 77)")
    assert duration(row, unlocked, set()) == (None, False)
    assert fmt_duration(7530) == "2h 05m" and fmt_duration(3.25) == "3.2s" and fmt_duration(90061) == "1d 01h"


LONG_WHY = ("step 'quotes' (read_dataset) failed: dataset 'quote': file trade_dt=2020-08-06/part-00003-4f1c.snappy"
            ".parquet is not a Parquet file (magic number b'PAR0' at its end); move it out of the dataset")


def test_status_fits_the_message_to_the_terminal_and_prints_a_failed_rows_whole(
        backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """The message was cut at 80 characters whatever the terminal (COLUMNS=250 changed nothing), so why a run
    failed was only in --json or the log."""
    t = backend.tracker()
    t.set_status("analyze_2020-08-06", "failed", LONG_WHY)
    t.set_status("preprocess_2020-08-06", "success", "success in 83.2s; " + "x" * 200)
    t.set_status("preprocess_2020-08-07", "failed", "step ingest failed: no raw input\nsecond line of it")
    monkeypatch.delenv("COLUMNS", raising=False)
    piped = status(backend)  # not a terminal: whole lines, for grep and files
    assert cells(piped)["analyze_2020-08-06"]["MESSAGE"] == LONG_WHY
    assert "    second line of it" in piped.splitlines()
    assert LONG_WHY not in piped.replace(cells(piped)["analyze_2020-08-06"]["MESSAGE"], "", 1)  # not twice
    monkeypatch.setenv("COLUMNS", "250")
    wide = status(backend)
    lines = wide.splitlines()
    assert max(len(ln) for ln in lines) <= 250
    cut = cells(wide)["analyze_2020-08-06"]["MESSAGE"]
    assert cut.endswith("…") and len(cut) > 80 and LONG_WHY.startswith(cut[:-1])
    row = lines.index(next(ln for ln in lines if ln.startswith("analyze_2020-08-06 ")))
    under = []
    for ln in lines[row + 1:]:
        if not ln.startswith("    "):
            break
        under.append(ln.strip())
    assert " ".join(under) == LONG_WHY  # the whole reason, wrapped under its row
    after = lines[lines.index(next(ln for ln in lines if ln.startswith("preprocess_2020-08-06 "))) + 1]
    assert not after.startswith(" ")  # a success's long message stays cut
    monkeypatch.setenv("COLUMNS", "100")  # narrower than the other columns: the message keeps a least width
    assert len(cells(status(backend))["analyze_2020-08-06"]["MESSAGE"]) == MIN_MESSAGE


def test_status_since_filters_on_when_rows_started_or_changed(backend: Backend) -> None:
    """--start/--end filter processing dates; "what ran since yesterday morning" could not be asked."""
    t = backend.tracker()
    for job in ("analyze_2020-08-03", "analyze_2020-08-04", "analyze_2020-08-05", "analyze_2020-08-06"):
        t.set_status(job, "success")
    set_times(backend, "analyze_2020-08-03", "2026-12-05 06:00:00", "2026-12-05 06:10:00")
    set_times(backend, "analyze_2020-08-04", "2026-12-06 23:50:00", "2026-12-07 06:10:00")  # ended after
    set_times(backend, "analyze_2020-08-05", "2026-12-07 06:00:00", "2026-12-07 06:10:00")
    assert list(cells(status(backend, "--since", "2026-12-07"))) == ["analyze_2020-08-04", "analyze_2020-08-05",
                                                                     "analyze_2020-08-06"]
    assert list(cells(status(backend, "--since", "2026-12-07T06:05"))) == [
        "analyze_2020-08-04", "analyze_2020-08-05", "analyze_2020-08-06"]
    assert list(cells(status(backend, "--since", "2026-12-07T08:05+02:00"))) == [  # 06:05 UTC
        "analyze_2020-08-04", "analyze_2020-08-05", "analyze_2020-08-06"]
    assert list(cells(status(backend, "--since", "2026-12-07T06:10:01"))) == ["analyze_2020-08-06"]
    assert list(cells(status(backend, "--since", "2h"))) == ["analyze_2020-08-06"]  # back from the tracker's clock
    assert [r["job_id"] for r in json.loads(status(backend, "--since", "2026-12-06", "--end", "2020-08-04",
                                                   "--json"))] == ["analyze_2020-08-04"]
    assert "no jobs in " in status(backend, "--since", "2099-01-01")
    p = argparse.ArgumentParser()
    add_status_arguments(p)
    with pytest.raises(SystemExit):
        p.parse_args(["--since", "yesterday"])


def test_status_audit_since(backend: Backend) -> None:
    seed(backend)
    assert unlock(backend, "", "analyze_2020-08-07", "--yes")[0] == 0
    assert "analyze_2020-08-07" in status(backend, "--audit", "--since", "1h")
    assert status(backend, "--audit", "--since", "2099-01-01").startswith("no unlock or forget recorded")


def test_status_steps_and_json_show_the_runs_log_file(backend: Backend) -> None:
    """A run's log had to be found by name in log_dir."""
    seed(backend)
    log = "/var/log/tickflow/analyze_2020-08-06_20261207T215114_ab12.log"
    backend.execute(f"UPDATE {backend.table} SET log_file = ? WHERE job_id = ?", (log, "analyze_2020-08-06"))
    lines = status(backend, "--steps").splitlines()
    row = next(i for i, ln in enumerate(lines) if ln.startswith("analyze_2020-08-06 "))
    assert lines[row + 1] == f"    log: {log}"
    assert sum("log:" in ln for ln in lines) == 1  # rows without one show none
    assert "log:" not in status(backend)
    rows = {r["job_id"]: r for r in json.loads(status(backend, "--json"))}
    assert rows["analyze_2020-08-06"]["log_file"] == log and rows["analyze_2020-08-07"]["log_file"] is None


def test_unlock_of_a_live_holder_on_this_host_says_so_and_needs_force(backend: Backend) -> None:
    """It said "lease still valid" and the generic "a run still alive would lose it" of a process it could see
    running, and --yes cleared it."""
    import os
    import socket

    job, pid = "preprocess_2020-08-07", os.getpid()  # this test's process: alive on this host
    t = backend.tracker()

    def lock() -> None:
        assert t.acquire(job, lease_seconds=600, holder_host=socket.gethostname(), holder_pid=pid)

    lock()
    said = (f"its process (pid {pid}) is running on this host: unlocking will let another run start beside it")
    code, text = unlock(backend, "", job, "--yes")
    assert code == 1 and said in text and "add --force" in text, text
    assert t.get(job).locked  # type: ignore[union-attr]
    code, text = unlock(backend, "y\n", job)  # a reflexive yes is not enough
    assert code == 1 and f"Type its pid ({pid}) to confirm" in text and t.get(job).locked  # type: ignore[union-attr]
    code, text = unlock(backend, f"{pid}\n", job)
    assert code == 0 and not t.get(job).locked, text  # type: ignore[union-attr]
    lock()
    code, text = unlock(backend, "", job, "--yes", "--force")  # scripts: both flags
    assert code == 0 and said in text and not t.get(job).locked, text  # type: ignore[union-attr]
    lock()
    code, text = unlock(backend, "y\n", job, "--force")
    assert code == 0 and "[y/N]" in text, text
    assert t.acquire("preprocess_2020-08-10", lease_seconds=600, holder_host="worker-3", holder_pid=pid)
    code, text = unlock(backend, "", "preprocess_2020-08-10", "--yes")  # another host: it cannot tell
    assert code == 0 and "running on this host" not in text, text


def test_status_steps_on_a_terminal_shows_a_steps_whole_message_under_it(
        backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """A succeeded step's row (what it read, the figures its transform recorded) was cut to the terminal's width,
    so the figures the README documents never showed on a terminal; a job's own success stays cut."""
    t = backend.tracker()
    figures = {"lines_read": 20200, "valid": 20166, "bad": 34, "bad_by_reason": {"broken_json": 1, "bad_date": 3},
               "files": 12}
    raw = {f"csv/2020-08-06/part-{i:05d}.txt": "x" * 40 for i in range(3)}
    message = written_message({"quarantine": ["trade_dt=2020-08-06"]}, {"quarantine": 34},
                              {"quarantine": "quarantine"}, raw, figures=figures)
    t.set_status("preprocess.ingest_2020-08-06", "success", message)
    t.set_status("preprocess_2020-08-06", "success", "preprocess 2020-08-06: success in 26.8s; " + "x" * 300)
    monkeypatch.setenv("COLUMNS", "200")
    lines = status(backend, "--steps").splitlines()
    assert max(len(ln) for ln in lines) <= 200
    row = next(i for i, ln in enumerate(lines) if ln.startswith("preprocess.ingest_2020-08-06 "))
    under = []
    for ln in lines[row + 1:]:
        if not ln.startswith("    "):
            break
        under.append(ln.strip())
    whole = " ".join(under)
    assert "lines_read 20,200" in whole and "files 12" in whole and whole.startswith("wrote quarantine 34 rows")
    job = next(i for i, ln in enumerate(lines) if ln.startswith("preprocess_2020-08-06 "))
    assert job + 1 == len(lines) or not lines[job + 1].startswith("    ")  # a job's success stays cut
