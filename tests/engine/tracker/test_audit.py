"""The audit trail of the operator commands: `unlock` and `forget` leave an entry in ``<table>_audit`` (who,
when, the rows before), written in the transaction of their change, and `status --audit` lists it.

Both backends; the commands run in this process, so the entries name this process as their actor.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path

import pytest

from engine import cli
from engine.config import Config, TrackerConfig
from engine.errors import TrackerError
from engine.tracker.base import audit_table_name, current_actor, operator
from tests.engine.tracker.conftest import Backend
from tests.engine.tracker.test_commands import forget, seed, status, unlock

LOCKED = "analyze_2020-08-07"  # seed(): held by worker-3 (pid 77)


def audit_table_exists(backend: Backend, table: str | None = None) -> bool:
    name = f"{backend.table if table is None else table}_audit"
    if backend.kind == "sqlite":
        if not backend.sqlite_file.exists():
            return False
        return bool(backend.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))
    return bool(backend.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() "
                                "AND table_name = ?", (name,)))


def test_forget_records_the_deleted_rows_and_their_prior_status(backend: Backend) -> None:
    seed(backend)
    t = backend.tracker()
    t.set_status("preprocess.ingest_2020-08-06", "failed", "no raw input")
    code, text = forget(backend, "y\n", "preprocess_2020-08-06")
    assert code == 0, text
    [entry] = t.audit_entries()
    assert (entry.job_id, entry.action) == ("preprocess_2020-08-06", "forget")
    assert entry.actor == f"{operator()} pid {os.getpid()}" == current_actor()
    before = {r["job_id"]: r for r in entry.before()}
    assert sorted(before) == ["preprocess.ingest_2020-08-06", "preprocess.load_2020-08-06", "preprocess_2020-08-06"]
    own = before["preprocess_2020-08-06"]
    assert (own["status"], own["message"], own["lock_id"]) == ("success", "ok preprocess_2020-08-06", None)
    assert str(own["updated_time"]).endswith("+00:00")
    assert (before["preprocess.ingest_2020-08-06"]["status"], before["preprocess.ingest_2020-08-06"]["message"]) == (
        "failed", "no raw input")
    now = t.now()
    assert entry.audit_time.tzinfo is None and now - dt.timedelta(seconds=30) <= entry.audit_time <= now


def test_unlock_records_the_previous_holder(backend: Backend) -> None:
    t = backend.tracker()
    lease = t.acquire(LOCKED, lease_seconds=60, holder_host="worker-3", holder_pid=77, run_id="run-42")
    assert lease is not None
    code, text = unlock(backend, "", LOCKED, "--yes")
    assert code == 0, text
    [entry] = t.audit_entries()
    assert (entry.job_id, entry.action, entry.actor) == (LOCKED, "unlock", current_actor())
    [row] = entry.before()
    assert (row["job_id"], row["status"], row["lock_id"], row["holder_host"], row["holder_pid"], row["run_id"]) == (
        LOCKED, "running", lease.lock_id, "worker-3", 77, "run-42")
    after = t.get(LOCKED)
    assert after is not None and after.updated_time is not None
    assert abs(entry.audit_time - after.updated_time) < dt.timedelta(seconds=5)  # the tracker's clock
    assert t.unlock(LOCKED, "again") is False  # nothing left to clear: no second entry
    assert len(t.audit_entries()) == 1


def test_nothing_is_recorded_when_nothing_changed(backend: Backend) -> None:
    seed(backend)
    t = backend.tracker()
    assert unlock(backend, "n\n", LOCKED)[0] == 1  # declined
    assert unlock(backend, "", "nosuch_2020-08-06", "--yes")[0] == 2  # unknown job
    assert "not locked" in unlock(backend, "", "analyze_2020-08-06", "--yes")[1]
    assert forget(backend, "n\n", "preprocess_2020-08-06")[0] == 1  # declined
    assert forget(backend, "", "nosuch_2020-08-06", "--yes")[0] == 2  # unknown job
    assert forget(backend, "", LOCKED, "--yes")[0] == 4  # refused: a run holds it
    assert forget(backend, "", "preprocess.load_2020-08-06", "--yes")[0] == 2  # a step's id
    # the statements themselves: a lock that changed meanwhile, a job locked after the command looked
    assert t.unlock(LOCKED, "ops", lock_id=str(uuid.uuid4())) is False
    assert t.forget(LOCKED, ["analyze.load_2020-08-07"]) == []
    assert t.audit_entries() == []
    assert not audit_table_exists(backend)  # created only when first needed
    assert status(backend, "--audit").startswith("no unlock or forget recorded in ")
    assert json.loads(status(backend, "--audit", "--json")) == []


def test_the_audit_entry_is_in_the_transaction_of_the_change(backend: Backend) -> None:
    """An audit insert that fails takes the unlock or forget back with it: no change goes unrecorded."""
    seed(backend)
    t = backend.tracker()
    backend.execute(f"CREATE TABLE {backend.table}_audit (unrelated INTEGER)")
    with pytest.raises(TrackerError):
        t.unlock(LOCKED, "ops")
    with pytest.raises(TrackerError):
        t.forget("preprocess_2020-08-06", ["preprocess.load_2020-08-06"])
    row = t.get(LOCKED)
    assert row is not None and row.locked and row.status == "running"
    assert t.get("preprocess_2020-08-06") is not None and t.get("preprocess.load_2020-08-06") is not None


def test_a_long_table_name_gets_a_shortened_audit_table_of_its_own(backend: Backend) -> None:
    assert audit_table_name("Job_Tracker") == "job_tracker_audit"
    assert audit_table_name("t" * 57) == "t" * 57 + "_audit"
    long, other = "t" * 58, "t" * 62 + "x"
    assert len(audit_table_name(long)) <= 63 and audit_table_name(long).endswith("_audit")
    assert audit_table_name(long) != audit_table_name(other)  # same first 48 characters, different tables
    t = backend.tracker(long)
    assert t.acquire(LOCKED, lease_seconds=60, holder_host="worker-3", holder_pid=77)
    assert t.unlock(LOCKED, "ops")  # an operator is never kept from clearing a lock by the name
    assert t.lock_of(LOCKED) is None
    [entry] = t.audit_entries()
    assert (entry.job_id, entry.action) == (LOCKED, "unlock")


def test_status_audit_lists_entries_oldest_first_with_the_filters(backend: Backend) -> None:
    seed(backend)
    assert unlock(backend, "", LOCKED, "--yes")[0] == 0
    assert forget(backend, "", "preprocess_2020-08-06", "--yes")[0] == 0
    assert forget(backend, "", "preprocess_2020-08-05", "--yes")[0] == 0
    lines = status(backend, "--audit").splitlines()
    assert lines[0].split() == ["TIME", "(UTC)", "JOB_ID", "ACTION", "BY", "BEFORE"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[2], r[3]) for r in rows] == [(LOCKED, "unlock"), ("preprocess_2020-08-06", "forget"),
                                           ("preprocess_2020-08-05", "forget")]
    assert all(" ".join(r[4:7]) == current_actor() for r in rows)
    assert "status running;" in lines[1] and "held by worker-3 (pid 77)" in lines[1]
    assert "status success;" in lines[2] and "deleted preprocess.load_2020-08-06, preprocess_2020-08-06" in lines[2]
    picked = status(backend, "--audit", "--pipeline", "preprocess", "--start", "2020-08-06")
    assert [line.split()[2] for line in picked.splitlines()[1:]] == ["preprocess_2020-08-06"]
    assert [line.split()[2] for line in status(backend, "--audit", "--end", "2020-08-06").splitlines()[1:]] == [
        "preprocess_2020-08-06", "preprocess_2020-08-05"]

    entries = json.loads(status(backend, "--audit", "--json", "--pipeline", "analyze", "--pipeline", "preprocess"))
    assert [(e["job_id"], e["action"]) for e in entries] == [(LOCKED, "unlock"), ("preprocess_2020-08-06", "forget"),
                                                             ("preprocess_2020-08-05", "forget")]
    first = entries[0]
    assert set(first) == {"id", "audit_time", "job_id", "action", "actor", "rows_before"}
    assert first["actor"] == current_actor()
    stamp = dt.datetime.fromisoformat(first["audit_time"])
    assert first["audit_time"].endswith("+00:00") and stamp.utcoffset() == dt.timedelta(0)
    assert [(r["job_id"], r["status"], r["holder_host"], r["holder_pid"]) for r in first["rows_before"]] == [
        (LOCKED, "running", "worker-3", 77)]
    assert first["rows_before"][0]["updated_time"].endswith("+00:00")
    assert [r["job_id"] for r in entries[1]["rows_before"]] == ["preprocess.load_2020-08-06", "preprocess_2020-08-06"]
    assert json.loads(status(backend, "--audit", "--json", "--pipeline", "nothing")) == []


def test_status_audit_reads_without_creating_anything(backend: Backend, tmp_path: Path) -> None:
    if backend.kind == "sqlite":
        fresh = Config(tracker=TrackerConfig(sqlite_path="fresh/tracker.sqlite"), base_dir=tmp_path / "ro")
        from tests.engine.tracker.test_read_only import status as status_of

        assert status_of(fresh, "--audit").startswith("no unlock or forget recorded in SQLite ")
        assert json.loads(status_of(fresh, "--audit", "--json")) == []
        assert not (tmp_path / "ro").exists()  # no file, no folder
    assert status(backend, "--audit").startswith("no unlock or forget recorded in ")
    assert not audit_table_exists(backend)
    backend.tracker().set_status("preprocess_2020-08-06", "success")  # the job table, still no audit table
    assert json.loads(status(backend, "--audit", "--json")) == []
    assert not audit_table_exists(backend)


def test_status_help_documents_audit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["status", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--audit" in text and "every unlock and forget" in text


def test_unlock_lists_the_steps_it_marked_failed_as_they_were(backend: Backend) -> None:
    from tests.engine.tracker.test_commands import KILLED, killed_run

    lock_id = killed_run(backend)
    t = backend.tracker()
    step_before = t.get("preprocess.ingest_2024-01-11")
    assert unlock(backend, "", KILLED, "--yes")[0] == 0
    [entry] = t.audit_entries()
    assert (entry.job_id, entry.action, entry.actor) == (KILLED, "unlock", current_actor())
    before = {r["job_id"]: r for r in entry.before()}
    assert sorted(before) == ["preprocess.ingest_2024-01-11", KILLED]  # not the step that had succeeded
    assert (before[KILLED]["status"], before[KILLED]["lock_id"], before[KILLED]["run_id"]) == (
        "running", lock_id, "run-9")
    step = before["preprocess.ingest_2024-01-11"]
    assert step_before is not None and step_before.updated_time is not None
    assert (step["status"], step["run_id"], step["lock_id"]) == ("running", "run-9", None)
    assert step["updated_time"] == step_before.updated_time.replace(tzinfo=dt.UTC).isoformat()
    line = status(backend, "--audit").splitlines()[1]
    assert "status running;" in line and "held by worker-3 (pid 77)" in line
    assert "steps running -> failed preprocess.ingest_2024-01-11" in line
    # a plain unlock (no step left running) lists the job's row alone, as before
    assert t.acquire("preprocess_2024-01-13", lease_seconds=60, holder_host="worker-3", holder_pid=77)
    assert unlock(backend, "", "preprocess_2024-01-13", "--yes")[0] == 0
    [_, plain] = t.audit_entries()
    assert [r["job_id"] for r in plain.before()] == ["preprocess_2024-01-13"]
