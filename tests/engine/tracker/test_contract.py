"""The tracker contract, identical on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest

from engine.errors import TrackerError
from engine.tracker import LeaseLost, Tracker, parse_job_id, pipeline_job_id, step_job_id
from engine.tracker.base import InvalidTableName, validate_table_name
from tests.engine.tracker.conftest import Backend

JOB = "preprocess_2020-08-06"


def acquire(t: Tracker, job: str = JOB, lease: float = 60, pid: int = 111, force: bool = False):
    return t.acquire(job, lease_seconds=lease, holder_host="host-a", holder_pid=pid, run_id="run-1",
                     force=force)


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def test_job_ids_follow_the_convention() -> None:
    d = dt.date(2020, 8, 6)
    assert pipeline_job_id("preprocess", d) == "preprocess_2020-08-06"
    assert step_job_id("preprocess", "load_trades", d) == "preprocess.load_trades_2020-08-06"
    key = parse_job_id("preprocess.load_trades_2020-08-06")
    assert key is not None and (key.pipeline, key.step, key.date) == ("preprocess", "load_trades", d)
    key = parse_job_id("my_pipe_2020-08-06")
    assert key is not None and (key.pipeline, key.step) == ("my_pipe", None)
    assert parse_job_id("nodate") is None and parse_job_id("x_2020-13-01") is None


def test_acquire_creates_a_running_row_with_holder_and_lease(backend: Backend) -> None:
    t = backend.tracker()
    before = t.now()
    lease = acquire(t)
    assert lease is not None and not lease.took_over
    row = t.get(JOB)
    assert row is not None
    assert (row.status, row.lock_id, row.holder_host, row.holder_pid, row.run_id) == (
        "running", lease.lock_id, "host-a", 111, "run-1")
    uuid.UUID(row.lock_id)  # a real UUID
    assert before <= row.updated_time <= t.now()
    assert row.lease_expires == lease.expires
    assert abs((row.lease_expires - row.updated_time).total_seconds() - 60) < 0.01


def test_only_one_acquire_wins_and_others_see_the_holder(backend: Backend) -> None:
    t1, t2 = backend.tracker(), backend.tracker()
    first = acquire(t1, pid=1)
    assert first is not None
    assert acquire(t2, pid=2) is None
    assert acquire(t1, pid=3) is None  # not re-entrant either
    row = t2.get(JOB)
    assert row is not None and row.lock_id == first.lock_id and row.holder_pid == 1


def test_release_clears_only_the_callers_own_lock(backend: Backend) -> None:
    t = backend.tracker()
    lease = acquire(t)
    assert lease is not None
    impostor = type(lease)(job_id=JOB, lock_id=str(uuid.uuid4()), expires=lease.expires,
                           acquired_at=lease.acquired_at)
    assert t.release(impostor, "failed", "not mine") is False
    row = t.get(JOB)
    assert row is not None and (row.status, row.lock_id) == ("running", lease.lock_id)
    assert t.release(lease, "success", "done") is True
    row = t.get(JOB)
    assert row is not None and (row.status, row.lock_id, row.lease_expires, row.message) == (
        "success", None, None, "done")
    assert t.release(lease, "failed") is False  # twice is a no-op
    assert t.get(JOB).status == "success"  # type: ignore[union-attr]


def test_success_is_not_reacquired_unless_forced(backend: Backend) -> None:
    t = backend.tracker()
    lease = acquire(t)
    assert lease is not None and t.release(lease, "success")
    assert acquire(t) is None
    assert t.get(JOB).status == "success"  # type: ignore[union-attr]
    forced = acquire(t, force=True)
    assert forced is not None and t.get(JOB).status == "running"  # type: ignore[union-attr]


def test_failed_job_can_be_acquired_again(backend: Backend) -> None:
    t = backend.tracker()
    lease = acquire(t)
    assert lease is not None and t.release(lease, "failed", "boom")
    again = acquire(t, pid=222)
    assert again is not None and again.lock_id != lease.lock_id and not again.took_over


def test_expired_lease_is_taken_over_and_the_old_holder_is_fenced(backend: Backend) -> None:
    t = backend.tracker()
    old = acquire(t, lease=0.3, pid=4242)
    assert old is not None
    assert acquire(t, pid=5) is None  # still valid right now
    row = t.get(JOB)
    assert row is not None
    wait_until(lambda: t.now() > row.lease_expires, 5, "the short lease to expire")
    new = acquire(t, pid=5)
    assert new is not None and new.took_over
    assert (new.prev_lock_id, new.prev_holder_host, new.prev_holder_pid) == (old.lock_id, "host-a", 4242)
    assert new.prev_lease_expires == old.expires
    assert "4242" in new.takeover_description() and JOB in new.takeover_description()
    # the old holder can neither renew, nor release, nor record steps any more
    assert t.renew(old, 60) is None
    assert t.release(old, "failed") is False
    with pytest.raises(LeaseLost):
        t.set_status(step_job_id("preprocess", "s1", dt.date(2020, 8, 6)), "success", fence=old)
    row = t.get(JOB)
    assert row is not None and (row.status, row.lock_id, row.holder_pid) == ("running", new.lock_id, 5)


def test_renew_extends_the_lease(backend: Backend) -> None:
    t = backend.tracker()
    lease = acquire(t, lease=5)
    assert lease is not None
    renewed = t.renew(lease, 100)
    assert renewed is not None and renewed > lease.expires
    assert t.get(JOB).lease_expires == renewed  # type: ignore[union-attr]


def test_step_status_upsert_and_fence(backend: Backend) -> None:
    t = backend.tracker()
    lease = acquire(t)
    assert lease is not None
    step = "preprocess.load_2020-08-06"
    t.set_status(step, "running", run_id="run-1", fence=lease)
    started = t.get(step).started_time  # type: ignore[union-attr]
    t.set_status(step, "success", "42 rows", run_id="run-1", fence=lease)
    row = t.get(step)
    assert row is not None and (row.status, row.message, row.lock_id, row.run_id) == (
        "success", "42 rows", None, "run-1")
    assert row.started_time == started  # kept from 'running'
    t.release(lease, "failed")
    with pytest.raises(LeaseLost):
        t.set_status(step, "failed", fence=lease)
    assert t.get(step).status == "success"  # type: ignore[union-attr]
    t.set_status("other_2020-08-06", "success")  # unfenced (tests, tooling)
    assert t.get("other_2020-08-06").status == "success"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        t.set_status(step, "done")


def test_unlock_clears_any_lock_and_records_the_message(backend: Backend) -> None:
    t = backend.tracker()
    lease = acquire(t)
    assert lease is not None
    assert t.unlock(JOB, "x", lock_id=str(uuid.uuid4())) is False  # only the lock the operator saw
    assert t.unlock(JOB, "unlocked by ops@box") is True
    row = t.get(JOB)
    assert row is not None and (row.status, row.lock_id, row.message) == ("failed", None, "unlocked by ops@box")
    assert t.unlock(JOB, "again") is False
    assert t.release(lease, "success") is False  # the old holder is fenced


def test_unlock_fails_the_named_steps_still_running_in_its_own_transaction(backend: Backend) -> None:
    t = backend.tracker()
    lease = acquire(t)
    assert lease is not None
    steps = ["preprocess.ingest_2020-08-06", "preprocess.eod_2020-08-06", "preprocess.gone_2020-08-06"]
    t.set_status(steps[0], "running", run_id="r1", fence=lease)
    t.set_status(steps[1], "success", "wrote", run_id="r1", fence=lease)
    # the lock shown is no longer the job's: nothing changes, the steps neither
    assert t.unlock(JOB, "x", lock_id=str(uuid.uuid4()), steps=steps) is False
    assert t.get(steps[0]).status == "running"  # type: ignore[union-attr]
    assert t.unlock(JOB, "unlocked by ops@box", lock_id=lease.lock_id, steps=steps) is True
    running, done = t.get(steps[0]), t.get(steps[1])
    assert running is not None and (running.status, running.message, running.run_id) == (
        "failed", "its run was unlocked by ops@box", "r1")
    assert done is not None and (done.status, done.message) == ("success", "wrote")  # only running ones
    assert t.get(steps[2]) is None
    [entry] = t.audit_entries()
    assert sorted(r["job_id"] for r in entry.before()) == sorted([JOB, steps[0]])


def test_list_jobs_sorted(backend: Backend) -> None:
    t = backend.tracker()
    for job in ("b_2020-08-07", "a_2020-08-06", "a.s_2020-08-06"):
        t.set_status(job, "success")
    assert [r.job_id for r in t.list_jobs()] == ["a.s_2020-08-06", "a_2020-08-06", "b_2020-08-07"]


def test_four_column_table_is_upgraded_in_place(backend: Backend) -> None:
    backend.execute(f"CREATE TABLE {backend.table} (job_id VARCHAR PRIMARY KEY, status VARCHAR(10), "
                    "updated_time TIMESTAMP, lock_id UUID DEFAULT NULL)")
    backend.execute(f"INSERT INTO {backend.table} (job_id, status, updated_time) VALUES (?, ?, ?)",
                    ("preprocess_2020-08-05", "success", "2020-08-05 23:00:00"))
    t = backend.tracker()
    legacy = t.get("preprocess_2020-08-05")
    assert legacy is not None and legacy.status == "success"
    assert legacy.updated_time == dt.datetime(2020, 8, 5, 23, 0)
    assert acquire(t, job="preprocess_2020-08-05") is None  # its success is honoured
    lease = acquire(t)
    assert lease is not None and t.release(lease, "success")
    backend.tracker()  # opening again finds nothing to change
    assert len(t.list_jobs()) == 2


def test_legacy_lock_without_lease_is_held_until_unlocked(backend: Backend) -> None:
    t = backend.tracker()
    backend.execute(f"INSERT INTO {backend.table} (job_id, status, updated_time, lock_id) VALUES (?, ?, ?, ?)",
                    (JOB, "running", "2020-08-05 23:00:00", str(uuid.uuid4())))
    assert acquire(t) is None
    assert t.unlock(JOB, "ops") is True
    assert acquire(t) is not None


@pytest.mark.parametrize("name", ["job tracker", "jt;drop table x", "1jt", "jt-1", "", "a" * 64, 'jt"', "s.t"])
def test_table_names_are_validated(backend: Backend, name: str) -> None:
    with pytest.raises(InvalidTableName, match="not a valid SQL identifier"):
        backend.tracker(table=name)
    assert isinstance(InvalidTableName("x"), TrackerError)


def test_table_names_fold_to_lower_case() -> None:
    assert validate_table_name("Job_Tracker") == "job_tracker"


def test_invalidate_turns_only_success_rows_stale_and_is_fenced(backend: Backend) -> None:
    t = backend.tracker()
    lease = acquire(t)
    assert lease is not None
    done, failed, missing = "preprocess.eod_2020-08-06", "preprocess.bars_2020-08-06", "preprocess.x_2020-08-06"
    t.set_status(done, "success", "42 rows", run_id="run-0")
    t.set_status(failed, "failed", "broke", run_id="run-0")
    assert t.invalidate([failed, done, missing, done], "upstream ingest recomputed", run_id="run-1",
                        fence=lease) == [done]
    row = t.get(done)
    assert row is not None and (row.status, row.message, row.run_id, row.lock_id) == (
        "stale", "upstream ingest recomputed", "run-1", None)
    assert t.get(failed).status == "failed" and t.get(missing) is None  # type: ignore[union-attr]
    assert t.invalidate([done], "again", fence=lease) == []  # nothing left to turn: not a lost lock
    assert t.invalidate([], "none", fence=lease) == []
    t.set_status(done, "success", "43 rows")
    t.release(lease, "failed")
    with pytest.raises(LeaseLost):
        t.invalidate([done], "too late", fence=lease)
    assert t.get(done).status == "success"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        t.set_status(done, "done")
