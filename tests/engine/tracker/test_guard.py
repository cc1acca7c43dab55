"""JobGuard in-process on both backends: refusals, statuses, heartbeat, signals, upstream waits."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
import time
from urllib.parse import quote

import pytest

from engine.errors import AlreadyRunning, UpstreamNotReady
from engine.tracker import JobGuard, LeaseLost, Terminated
from engine.tracker.base import fmt_time
from engine.tracker.readers import Reads
from tests.engine.tracker.conftest import Backend
from tests.engine.tracker.test_contract import wait_until

DATE = dt.date(2020, 8, 6)
JOB = "analyze_2020-08-06"
UP = "preprocess_2020-08-06"


class Recorder(logging.Handler):
    """Collects log lines and lets a test wait for one."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.lines.append(record.getMessage())
            self.changed.notify_all()

    def wait_for(self, text: str, timeout: float) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: any(text in ln for ln in self.lines), timeout):
                raise AssertionError(f"no log line with {text!r} within {timeout} s: {self.lines}")


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def logger(rec: Recorder) -> logging.Logger:
    log = logging.getLogger(f"test.guard.{id(rec)}")
    log.setLevel(logging.DEBUG)
    log.addHandler(rec)
    return log


def test_missing_upstream_is_refused_fast_naming_the_job(backend: Backend) -> None:
    t = backend.tracker()
    start = time.monotonic()
    with pytest.raises(UpstreamNotReady) as err, JobGuard(t, "analyze", DATE, ["preprocess"]):
        pytest.fail("must not run")
    assert time.monotonic() - start < 1.0
    assert UP in str(err.value) and "missing" in str(err.value) and err.value.exit_code == 3
    assert t.get(JOB) is None  # nothing written for the refused job


def test_a_required_pipeline_the_tracker_has_never_seen_is_named_as_a_likely_typo(backend: Backend) -> None:
    """`requires: [preprocesss]` said "run it first", and --wait-for-upstream would have waited for nothing."""
    t = backend.tracker()
    t.set_status("preprocess_2020-08-05", "success")
    with pytest.raises(UpstreamNotReady) as err, JobGuard(t, "analyze", DATE, ["preprocesss"]):
        pytest.fail("must not run")
    assert ("upstream job preprocesss_2020-08-06 (status: missing; the tracker has no job of pipeline "
            "'preprocesss' at all (did you mean 'preprocess'?)) is not successful") in str(err.value)
    assert f"(looked in {t.describe()})" in str(err.value)
    with pytest.raises(UpstreamNotReady) as err, JobGuard(t, "analyze", DATE, ["preprocess"]):
        pytest.fail("must not run")
    assert f"{UP} (status: missing) is not successful" in str(err.value)  # a date not run yet: no hint


@pytest.mark.parametrize("status", ["failed", "running"])
def test_unsuccessful_upstream_names_its_status(backend: Backend, status: str) -> None:
    t = backend.tracker()
    t.set_status(UP, status)
    with pytest.raises(UpstreamNotReady, match=f"{UP} \\(status: {status}\\)") as err, JobGuard(
            t, "analyze", DATE, ["preprocess"]):
        pytest.fail("must not run")
    # a failed upstream job of a date that should never have run blocks every later catch-up: the way out
    forget = f"; if {UP} should never have run (a date without input, a mistyped date), remove it with " \
             f"'run_pipeline.py forget {UP}'"
    assert str(err.value).endswith(forget) == (status == "failed"), str(err.value)


def test_an_upstream_job_held_by_a_dead_process_is_named_so(backend: Backend) -> None:
    """Waiting for it cannot help (its run was killed): the refusal says so and how to move it on."""
    import socket
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that ran on this host and is gone
    t = backend.tracker()
    assert t.acquire(UP, lease_seconds=600, holder_host=socket.gethostname(), holder_pid=dead.pid)
    with pytest.raises(UpstreamNotReady) as err, JobGuard(t, "analyze", DATE, ["preprocess"]):
        pytest.fail("must not run")
    assert (f"{UP} (status: running, but its run's process on this host is gone: rerun it (it takes the job over "
            f"once the lease expires) or 'run_pipeline.py unlock {UP}')") in str(err.value)
    assert t.acquire(UP, lease_seconds=600, holder_host="elsewhere", holder_pid=dead.pid, force=True) is None
    with pytest.raises(UpstreamNotReady) as err, JobGuard(t, "analyze", DATE, ["preprocess"]):
        pytest.fail("must not run")
    assert "process on this host is gone" in str(err.value)  # still the dead holder's lock


def test_successful_upstream_lets_the_job_run_and_clean_exit_is_success(backend: Backend) -> None:
    t = backend.tracker()
    t.set_status(UP, "success")
    with JobGuard(t, "analyze", DATE, ["preprocess"], run_id="r1") as g:
        assert not g.already_succeeded and g.lease is not None
        row = t.get(JOB)
        assert row is not None and (row.status, row.lock_id, row.holder_pid, row.run_id) == (
            "running", g.lease.lock_id, os.getpid(), "r1")
    row = t.get(JOB)
    assert row is not None and (row.status, row.lock_id) == ("success", None)


def test_already_succeeded_skips_without_locking_and_force_reruns(backend: Backend) -> None:
    t = backend.tracker()
    t.set_status(JOB, "success", "first run")
    before = t.get(JOB)
    with JobGuard(t, "analyze", DATE) as g:
        assert g.already_succeeded and g.lease is None
    assert t.get(JOB) == before
    with JobGuard(t, "analyze", DATE, force=True) as g:
        assert not g.already_succeeded
        assert t.get(JOB).status == "running"  # type: ignore[union-attr]
        g.finish("success", "forced rerun")
    row = t.get(JOB)
    assert row is not None and (row.status, row.message, row.lock_id) == ("success", "forced rerun", None)


def test_running_elsewhere_is_refused_fast_naming_holder_and_lease(backend: Backend) -> None:
    t = backend.tracker()
    lease = t.acquire(JOB, lease_seconds=120, holder_host="worker-7", holder_pid=4711)
    assert lease is not None
    start = time.monotonic()
    with pytest.raises(AlreadyRunning) as err, JobGuard(t, "analyze", DATE, force=True):
        pytest.fail("must not run")
    assert time.monotonic() - start < 1.0
    msg = str(err.value)
    assert err.value.exit_code == 4
    for part in (JOB, "worker-7", "4711", "since", "lease expires", lease.expires.strftime("%Y-%m-%d %H:%M:%S")):
        assert part in msg, (part, msg)
    assert t.get(JOB).lock_id == lease.lock_id  # type: ignore[union-attr]


def test_exception_records_failed_and_releases(backend: Backend) -> None:
    t = backend.tracker()
    with pytest.raises(RuntimeError), JobGuard(t, "analyze", DATE):
        raise RuntimeError("disk full\nsecond line")
    row = t.get(JOB)
    assert row is not None and (row.status, row.lock_id, row.message) == ("failed", None, "RuntimeError: disk full")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored


def test_steps_are_recorded_and_resume_information_is_read_back(backend: Backend) -> None:
    t = backend.tracker()
    with pytest.raises(RuntimeError), JobGuard(t, "analyze", DATE) as g:
        g.mark_step("load", "running")
        g.mark_step("load", "success", "10 rows")
        g.mark_step("enrich", "running")
        raise RuntimeError("enrich broke")
    assert t.get("analyze.load_2020-08-06").status == "success"  # type: ignore[union-attr]
    with JobGuard(t, "analyze", DATE) as g:
        assert g.step_succeeded("load") and not g.step_succeeded("enrich") and not g.step_succeeded("other")
        with pytest.raises(ValueError):
            g.mark_step("load", "done")


def test_heartbeat_keeps_the_lock_beyond_the_first_lease(backend: Backend) -> None:
    t = backend.tracker()
    with JobGuard(t, "analyze", DATE, lease_seconds=1) as g:
        assert g.lease is not None
        first = g.lease.expires
        wait_until(lambda: t.now() > first + dt.timedelta(seconds=0.3), 5, "the first lease to pass")
        row = t.get(JOB)
        assert row is not None and row.lease_expires > t.now() and row.lock_id == g.lease.lock_id
        assert t.acquire(JOB, lease_seconds=5, holder_host="x", holder_pid=1) is None
    row = t.get(JOB)
    assert row is not None and (row.status, row.lock_id) == ("success", None)


def test_operator_unlock_is_noticed_by_the_holder(backend: Backend, rec: Recorder) -> None:
    t = backend.tracker()
    with JobGuard(t, "analyze", DATE, lease_seconds=1, log=logger(rec)) as g:
        assert t.unlock(JOB, "unlocked by ops@box")
        rec.wait_for("no longer ours", 5)
        with pytest.raises(LeaseLost):
            g.mark_step("load", "running")
    row = t.get(JOB)
    assert row is not None and (row.status, row.message) == ("failed", "unlocked by ops@box")


def test_sigterm_releases_and_records_failed(backend: Backend) -> None:
    t = backend.tracker()
    with pytest.raises(Terminated), JobGuard(t, "analyze", DATE):
        os.kill(os.getpid(), signal.SIGTERM)
        wait_until(lambda: False, 5, "SIGTERM to interrupt")
    row = t.get(JOB)
    assert row is not None and (row.status, row.lock_id, row.message) == ("failed", None, "terminated by SIGTERM")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_wait_for_upstream_starts_once_upstream_succeeds(backend: Backend, rec: Recorder) -> None:
    t, other = backend.tracker(), backend.tracker()

    def finish_upstream() -> None:
        rec.wait_for("waiting up to", 10)
        other.set_status(UP, "success")

    helper = threading.Thread(target=finish_upstream)
    helper.start()
    with JobGuard(t, "analyze", DATE, ["preprocess"], wait_for_upstream=20, log=logger(rec)) as g:
        assert g.lease is not None
    helper.join()
    assert t.get(JOB).status == "success"  # type: ignore[union-attr]
    assert any("now successful" in ln for ln in rec.lines)


def test_a_successful_upstream_that_is_not_complete_is_refused_or_waited_for(backend: Backend, rec: Recorder) -> None:
    """The upstream job is 'success', but the check says its raw input changed since (or its outputs are gone):
    this job would read what the upstream job no longer stands for, so it is refused (exit 3), or it waits until
    the upstream job has run again."""
    t = backend.tracker()
    t.set_status(UP, "success")
    why: dict[str, str | None] = {
        "now": "its raw input changed since it ran: csv/2020-08-06 (3 files, 0.0 MB; was 2 files, 0.0 MB)"}
    asked: list[str] = []

    def check(job: str) -> str | None:
        asked.append(job)
        return why["now"]

    with pytest.raises(UpstreamNotReady) as err, JobGuard(t, "analyze", DATE, ["preprocess"],
                                                          upstream_incomplete=check):
        pytest.fail("must not run")
    assert f"{UP} (status: success, but {why['now']})" in str(err.value) and err.value.exit_code == 3
    assert asked == [UP] and t.get(JOB) is None

    def rerun_upstream() -> None:
        rec.wait_for("waiting up to", 10)
        why["now"] = None  # the upstream job ran again meanwhile

    helper = threading.Thread(target=rerun_upstream)
    helper.start()
    with JobGuard(t, "analyze", DATE, ["preprocess"], wait_for_upstream=20, log=logger(rec),
                  upstream_incomplete=check) as g:
        assert g.lease is not None
    helper.join()
    assert t.get(JOB).status == "success"  # type: ignore[union-attr]


def test_wait_for_upstream_gives_up_with_exit_3(backend: Backend) -> None:
    t = backend.tracker()
    start = time.monotonic()
    with pytest.raises(UpstreamNotReady, match="after waiting 0.8 s"), JobGuard(
            t, "analyze", DATE, ["preprocess"], wait_for_upstream=0.8):
        pytest.fail("must not run")
    assert 0.8 <= time.monotonic() - start < 3


def test_downstream_success_marks_turn_stale_and_a_run_leaving_them_so_finishes_stale(backend: Backend) -> None:
    t = backend.tracker()
    t.set_status("analyze.enrich_2020-08-06", "success", '{"partitions":{}}')
    t.set_status("analyze.report_2020-08-06", "failed", "broke")
    with JobGuard(t, "analyze", DATE, run_id="r2") as g:
        # before step load rewrites its outputs; chart has no row yet, report is not 'success': both stay so
        assert g.invalidate_steps(["enrich", "report", "chart"], "outputs of upstream step load are being "
                                  "recomputed") == ["enrich"]
        assert not g.step_succeeded("enrich")
        assert g.steps_not_succeeded(["enrich", "report", "chart"]) == [
            ("enrich", "stale"), ("report", "failed"), ("chart", "missing")]
        g.finish("stale", "not up to date: enrich (stale)")
    row = t.get("analyze.enrich_2020-08-06")
    assert row is not None and (row.status, row.message, row.run_id) == (
        "stale", "outputs of upstream step load are being recomputed", "r2")
    assert t.get("analyze.report_2020-08-06").message == "broke"  # type: ignore[union-attr]
    assert t.get("analyze.chart_2020-08-06") is None
    assert t.get(JOB).status == "stale"  # type: ignore[union-attr]
    with JobGuard(t, "analyze", DATE) as g:  # a stale job is not done: a plain run takes it
        assert not g.already_succeeded and g.lease is not None
    with pytest.raises(LeaseLost):  # only while the lock is ours
        g.invalidate_steps(["enrich"], "late")


def test_messages_written_to_the_tracker_have_the_secrets_masked(backend: Backend) -> None:
    t = backend.tracker()
    secret = "s3cr:t/pw"
    t.set_status("analyze.enrich_2020-08-06", "success")
    with pytest.raises(RuntimeError), JobGuard(t, "analyze", DATE, secrets=[secret]) as g:
        g.mark_step("load", "failed", f"OperationalError: password={secret} rejected")
        g.invalidate_steps(["enrich"], f"upstream {secret}")
        raise RuntimeError(f"cannot open abfss://c@acct/x?sig={quote(secret, safe='')}")
    assert t.get("analyze.load_2020-08-06").message == "OperationalError: password=*** rejected"  # type: ignore[union-attr]
    assert t.get("analyze.enrich_2020-08-06").message == "upstream ***"  # type: ignore[union-attr]
    assert t.get(JOB).message == "RuntimeError: cannot open abfss://c@acct/x?sig=***"  # type: ignore[union-attr]
    with JobGuard(t, "analyze", DATE, secrets=[secret]) as g:
        g.finish("failed", f"step 'load' (sql) failed: password {secret}")
    assert t.get(JOB).message == "step 'load' (sql) failed: password ***"  # type: ignore[union-attr]


def test_a_lost_lock_cancels_the_running_spark_jobs(tmp_path, spark, rec: Recorder) -> None:
    """The heartbeat that finds the lock gone stops the Spark work at once, not at the next commit or mark."""
    from engine.tracker.sqlite_backend import SqliteTracker

    t = SqliteTracker(tmp_path / "t.sqlite")
    try:
        with pytest.raises(LeaseLost), JobGuard(t, "analyze", DATE, lease_seconds=1, log=logger(rec)) as g:
            def slow(rows):  # about 20 s per task unless cancelled
                for row in rows:
                    time.sleep(0.05)
                    yield row

            def unlock() -> None:
                with t.reopen() as ops:
                    ops.unlock(JOB, "unlocked by ops@box")

            unlocker = threading.Timer(1.0, unlock)
            unlocker.start()
            start = time.monotonic()
            try:
                with pytest.raises(Exception, match="cancel"):
                    spark.sparkContext.parallelize(range(800), 2).mapPartitions(slow).count()
            finally:
                unlocker.join()
            assert time.monotonic() - start < 15
            rec.wait_for("cancelled the running Spark jobs of job analyze_2020-08-06", 5)
            g.mark_step("load", "failed")
    finally:
        t.close()


def _succeed_after(t, job: str, other: str) -> None:
    """Record ``job`` success at a database time later than ``other``'s row (clocks tick in ms or us)."""
    while True:
        t.set_status(job, "success", "again")
        if t.get(job).updated_time > t.get(other).updated_time:  # type: ignore[union-attr, operator]
            return


def test_steps_computed_before_the_upstream_data_changed_are_not_up_to_date(backend: Backend) -> None:
    """A --select run of a job whose upstream job succeeded again recomputes the selected steps only: the others'
    rows still say 'success', yet the job is not up to date, and the run's summary names every such step."""
    t = backend.tracker()
    t.set_status(UP, "success")
    with JobGuard(t, "analyze", DATE, ["preprocess"]) as g:
        for step in ("bars", "vwap"):
            g.mark_step(step, "success")
    _succeed_after(t, UP, "analyze.vwap_2020-08-06")  # preprocess reran for the date
    with JobGuard(t, "analyze", DATE, ["preprocess"]) as g:
        g.mark_step("bars", "running")  # the selected step, recomputed
        g.mark_step("bars", "success")
        assert g.steps_not_succeeded(["bars", "vwap", "never"]) == [
            ("vwap", "computed before its upstream data changed"), ("never", "missing")]
        g.finish("stale")


def test_a_job_whose_upstream_succeeded_again_after_it_runs_again(backend: Backend, rec: Recorder) -> None:
    t = backend.tracker()
    t.set_status(UP, "success")
    with JobGuard(t, "analyze", DATE, ["preprocess"]) as g:
        assert g.outdated_by is None
    with JobGuard(t, "analyze", DATE, ["preprocess"]) as g:
        assert g.already_succeeded  # up to date: nothing to do
    _succeed_after(t, UP, JOB)  # preprocess reran for the date (e.g. corrected raw files)
    with JobGuard(t, "analyze", DATE, ["preprocess"], log=logger(rec)) as g:
        assert not g.already_succeeded and g.lease is not None
        assert g.outdated_by and g.outdated_by.startswith(f"upstream job {UP} succeeded again at ")
        assert t.get(JOB).status == "running"  # type: ignore[union-attr]
    assert any("running it again (no step of it is reused)" in line for line in rec.lines)
    with JobGuard(t, "analyze", DATE, ["preprocess"]) as g:
        assert g.already_succeeded and g.outdated_by is None  # recomputed after the upstream: up to date again


def test_a_succeeded_job_whose_outputs_are_gone_runs_again_unless_forced_anyway(backend: Backend,
                                                                                rec: Recorder) -> None:
    t = backend.tracker()
    t.set_status(UP, "success")
    t.set_status(JOB, "success")
    gone = "partition(s) it wrote are gone from storage (analytics/prior_close/trade_dt=2020-08-06)"
    with JobGuard(t, "analyze", DATE, ["preprocess"], log=logger(rec), incomplete=gone) as g:
        assert not g.already_succeeded and g.lease is not None and g.outdated_by is None
        assert t.get(JOB).status == "running"  # type: ignore[union-attr]
    assert any(f"succeeded before, but {gone}: running it again" in line for line in rec.lines)
    t.set_status(JOB, "success")
    with JobGuard(t, "analyze", DATE, ["preprocess"]) as g:
        assert g.already_succeeded  # nothing said to be gone: done


def test_a_job_reading_earlier_dates_runs_again_when_an_earlier_upstream_succeeds_after_it(backend: Backend) -> None:
    t = backend.tracker()
    earlier = "preprocess_2020-08-05"
    for job in (earlier, UP):
        t.set_status(job, "success")
    with JobGuard(t, "analyze", DATE, ["preprocess"], reads_earlier=True) as g:
        assert g.outdated_by is None and g.lease is not None
    _succeed_after(t, earlier, JOB)  # the 5th was preprocessed again (restated raw files)
    t.set_status("preprocess_2020-08-07", "success")  # a later date never outdates the 6th
    with JobGuard(t, "analyze", DATE, ["preprocess"]) as g:
        assert g.already_succeeded  # without reads_earlier only the same date counts
    with JobGuard(t, "analyze", DATE, ["preprocess"], reads_earlier=True) as g:
        assert g.lease is not None and not g.already_succeeded
        assert g.outdated_by and g.outdated_by.startswith(
            f"upstream job {earlier} (an earlier date, which this job reads) succeeded at ")
    with JobGuard(t, "analyze", DATE, ["preprocess"], reads_earlier=True) as g:
        assert g.already_succeeded  # recomputed after it: up to date again


def test_a_lock_left_by_a_dead_process_of_this_host_is_refused_as_such(backend: Backend) -> None:
    """Killed with -9: the refusal says what `status` ("held (process gone)") and `unlock` say, not "already
    running"; a live holder on this host is still "already running"."""
    import socket
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a real process of this host that has ended (its pid is not reused this quickly)
    t = backend.tracker()
    lease = t.acquire(JOB, lease_seconds=120, holder_host=socket.gethostname(), holder_pid=child.pid)
    assert lease is not None
    with pytest.raises(AlreadyRunning) as err, JobGuard(t, "analyze", DATE, force=True):
        pytest.fail("must not run")
    msg = str(err.value)
    assert err.value.exit_code == 4
    assert msg.startswith(f"job {JOB} is locked by a run on this host ({socket.gethostname()}, pid {child.pid}, "
                          "started "), msg
    assert "whose process is gone (killed or crashed); its lease expires at " in msg, msg
    assert lease.expires.strftime("%Y-%m-%d %H:%M:%S") in msg
    assert msg.endswith(f" s), after which the next run takes it over, or clear it now with "
                        f"'run_pipeline.py unlock {JOB}'"), msg
    assert "already running" not in msg
    assert t.get(JOB).lock_id == lease.lock_id  # type: ignore[union-attr]

    backend.execute(f"UPDATE {backend.table} SET lease_expires = NULL WHERE job_id = ?", (JOB,))  # an old lock
    with pytest.raises(AlreadyRunning) as err, JobGuard(t, "analyze", DATE, force=True):
        pytest.fail("must not run")
    assert str(err.value).endswith("whose process is gone (killed or crashed); its lock has no lease (set by an "
                                   f"older version): clear it with 'run_pipeline.py unlock {JOB}'"), str(err.value)

    backend.execute(f"UPDATE {backend.table} SET holder_pid = ? WHERE job_id = ?", (os.getpid(), JOB))  # alive
    with pytest.raises(AlreadyRunning) as err, JobGuard(t, "analyze", DATE, force=True):
        pytest.fail("must not run")
    assert str(err.value).startswith(f"job {JOB} is already running on {socket.gethostname()} (pid {os.getpid()})")


def test_a_run_is_refused_while_a_live_run_reads_its_data(backend: Backend) -> None:
    """preprocess --force of a date analyze is reading (its own, or an earlier one it looks back at) would
    replace the data under it: refused (exit 4) without touching its row, until the reader has ended."""
    t = backend.tracker()
    earlier = "preprocess_2020-08-05"
    for job in (earlier, UP):
        t.set_status(job, "success")
    before = {job: t.get(job) for job in (earlier, UP)}
    with JobGuard(t, "analyze", DATE, ["preprocess"], reads_earlier=True, log_file="/logs/a.log") as reader:
        assert reader.lease is not None
        row = t.get(JOB)
        assert row is not None and row.log_file == "/logs/a.log"
        assert Reads.parse(row.reads) == Reads(("preprocess",), DATE, earlier=True)
        for day in (DATE, DATE - dt.timedelta(days=1)):
            with pytest.raises(AlreadyRunning) as err, JobGuard(t, "preprocess", day, force=True):
                pytest.fail("must not run")
            msg = str(err.value)
            assert msg.startswith(f"job preprocess_{day.isoformat()} is not run now: {JOB} (running on ")
            assert "reads its data, which this run would replace under it" in msg
        assert {job: t.get(job) for job in (earlier, UP)} == before  # refused before its lock: rows unchanged
        with JobGuard(t, "preprocess", DATE + dt.timedelta(days=1)) as later:
            assert later.lease is not None  # a later date is not read
    with JobGuard(t, "preprocess", DATE, force=True) as rerun:
        assert rerun.lease is not None  # the reader has ended


def test_a_reader_waits_for_an_upstream_run_of_a_date_it_reads(backend: Backend, rec: Recorder) -> None:
    """analyze of the 6th, which reads earlier dates' closes, does not start while preprocess of the 5th is
    being rerun elsewhere: exit 3, or with --wait-for-upstream it starts once that run has ended."""
    t, elsewhere = backend.tracker(), backend.tracker()
    earlier = "preprocess_2020-08-05"
    for job in (earlier, UP):
        t.set_status(job, "success")
    restating = elsewhere.acquire(earlier, lease_seconds=60, holder_host="host-b", holder_pid=4242, force=True)
    assert restating is not None
    with pytest.raises(UpstreamNotReady) as err, JobGuard(t, "analyze", DATE, ["preprocess"], reads_earlier=True):
        pytest.fail("must not run")
    assert str(err.value) == (
        f"cannot run {JOB}: upstream job {earlier} (running on host-b (pid 4242) since "
        f"{fmt_time(t.get(earlier).started_time)}; its lease expires at "  # type: ignore[union-attr]
        f"{fmt_time(restating.expires)}) is being run: this run reads the data of preprocess for 2020-08-06 and "
        f"every earlier date; run it first (or use --wait-for-upstream SECONDS)")
    assert t.get(JOB) is None  # refused before its lock
    with JobGuard(t, "analyze", DATE, ["preprocess"]) as same_date_only:
        assert same_date_only.lease is not None  # a job not reading earlier dates is not held up
    started: list[JobGuard] = []
    inner = backend.tracker()

    def run() -> None:
        with JobGuard(inner, "analyze", DATE, ["preprocess"], reads_earlier=True, force=True,
                      wait_for_upstream=60, log=logger(rec)) as g:
            started.append(g)

    waiter = threading.Thread(target=run)
    waiter.start()
    rec.wait_for(f"waiting up to 60 s: upstream job {earlier} (running on host-b", 30)
    assert not started
    elsewhere.release(restating, "success")
    waiter.join(60)
    assert len(started) == 1 and started[0].lease is not None
