"""Operator commands `status`, `unlock` and `forget` on both backends."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json

from engine.step_message import written_message
from engine.tracker.commands import (
    add_forget_arguments,
    add_status_arguments,
    add_unlock_arguments,
    cmd_forget,
    cmd_status,
    cmd_unlock,
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
