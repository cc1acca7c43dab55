"""JobGuard: everything the runner needs around one pipeline run, decided before Spark starts.

On enter: upstream check (UpstreamNotReady, exit 3), already done (``already_succeeded``), atomic acquire
(AlreadyRunning, exit 4), a heartbeat thread renewing the lease, and SIGTERM/SIGINT turned into exceptions
so the release in ``__exit__`` runs. Refusals cost a few queries, never a JVM.

Every message written to the table passes the configured secrets' masker first: step and run messages quote
errors, and a driver error can quote a connection string.

A lost lock (operator unlock, or our lease expired and another run took over) stops the run: the heartbeat
notices it (and cancels the running Spark jobs), every tracker write is fenced by our lock_id, and
``assert_lock`` asks the database right before a step commits its outputs, so such a run never publishes outputs next
to the new holder's. A tracker connection the server closed is reopened by the backend (PostgreSQL) and the
statement retried once, so a database blip shorter than the lease does not end the run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import FrameType, TracebackType
from typing import Any

from engine.errors import AlreadyRunning, TrackerError, UpstreamNotReady
from engine.logs import SecretMasker
from engine.processes import gone_here
from engine.suggest import did_you_mean
from engine.tracker.base import (
    STALE,
    JobRow,
    Lease,
    LeaseLost,
    Terminated,
    Tracker,
    TrackerView,
    fmt_time,
    outdated_by,
    parse_job_id,
    pipeline_job_id,
    step_job_id,
    stop_message,
    succeeded_since,
    upstream_rows,
    validate_status,
)
from engine.tracker.readers import readers_of, reads_of, run_line, running_upstream

_ACQUIRE_ATTEMPTS = 3


class _NotAdmitted(Exception):
    """The admission found the upstream data this run reads not ready (the guard waits, or exits 3)."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what

_BACKOFF_START_S = 0.5
_BACKOFF_MAX_S = 10.0


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _cancel_spark_jobs(job_id: str, log: logging.Logger) -> None:
    """Stop the Spark work of a run that lost its lock now, not at its next commit or step mark.

    Best effort and cheap: only a SparkContext already running in this process (none is started, pyspark is
    not imported for it); the cancelled step then fails on its fenced mark with LeaseLost.
    """
    pyspark = sys.modules.get("pyspark")
    context = getattr(getattr(pyspark, "SparkContext", None), "_active_spark_context", None)
    if context is None:
        return
    try:
        context.cancelAllJobs()
    except Exception as exc:  # a stopping JVM: the fenced marks and commit check still stop the run
        log.warning("heartbeat: could not cancel the Spark jobs of job %s: %s", job_id, _one_line(exc))
    else:
        log.error("heartbeat: cancelled the running Spark jobs of job %s", job_id)


class _Heartbeat(threading.Thread):
    """Renews the lease every lease/3 seconds on its own connection, also while Spark blocks the main thread."""

    def __init__(self, reopen: Callable[[], Tracker], lease: Lease, lease_seconds: float,
                 log: logging.Logger, on_lost: Callable[[], None] | None = None):
        super().__init__(name=f"tickflow-heartbeat-{lease.job_id}", daemon=True)
        self._reopen = reopen
        self._on_lost = on_lost
        self._tracker: Tracker | None = reopen()  # opened now so a failure shows before the run starts
        self._lease = lease
        self._lease_seconds = lease_seconds
        self._log = log
        self._stop_event = threading.Event()
        self.lost = threading.Event()
        self.renewals = 0

    def run(self) -> None:
        interval = self._lease_seconds / 3.0
        while not self._stop_event.wait(interval):
            try:
                if self._tracker is None:
                    self._tracker = self._reopen()
                expires = self._tracker.renew(self._lease, self._lease_seconds)
            except TrackerError as exc:
                self._log.warning("heartbeat: could not renew the lease of job %s: %s", self._lease.job_id, exc)
                self._drop()
                continue
            if expires is None:
                self._log.error("heartbeat: the lock of job %s is no longer ours (unlocked by an operator or "
                                "taken over after our lease expired)", self._lease.job_id)
                self.lost.set()
                if self._on_lost is not None and not self._stop_event.is_set():
                    self._on_lost()
                break
            self.renewals += 1
        self._drop()

    def _drop(self) -> None:
        if self._tracker is not None:
            with contextlib.suppress(Exception):  # a broken connection cannot be closed cleanly
                self._tracker.close()
            self._tracker = None

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=10)


class JobGuard:
    """Context manager around one run of ``pipeline`` for ``date`` (see module docstring)."""

    def __init__(self, tracker: Tracker, pipeline: str, date: dt.date, requires: Sequence[str] = (), *,
                 force: bool = False, wait_for_upstream: float = 0.0, lease_seconds: int = 180,
                 log: logging.Logger | None = None, run_id: str | None = None, secrets: Sequence[str] = (),
                 reads_earlier: bool = False, incomplete: str | None = None,
                 upstream_incomplete: Callable[[str], str | None] | None = None, log_file: str | None = None):
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.tracker = tracker
        self.pipeline = pipeline
        self.date = date
        self.requires = tuple(requires)
        self.reads_earlier = reads_earlier  # earlier dates' upstream jobs outdate this one too
        self.reads = reads_of(self.requires, date, reads_earlier)  # kept in the locked row (tracker.readers)
        self.log_file = log_file
        self.force = force
        self.wait_for_upstream = max(0.0, float(wait_for_upstream))
        self.lease_seconds = lease_seconds
        self.log = log or logging.getLogger("tickflow.tracker")
        self.run_id = run_id or uuid.uuid4().hex
        self.job_id = pipeline_job_id(pipeline, date)
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.already_succeeded = False
        self.outdated_by: str | None = None  # set on enter: an upstream job succeeded again after this one
        # why a success no longer stands though nothing upstream changed (its outputs' partitions are gone from
        # storage): the job runs again, reusing the steps whose outputs are intact
        self.incomplete = None if force else incomplete
        # why a required job at 'success' is not complete after all (its outputs are gone from storage, its raw
        # input changed): this job would read what it no longer stands for, so it waits or exits 3 as for a
        # failed upstream job
        self.upstream_incomplete = upstream_incomplete
        self.upstream: list[JobRow | None] = []  # set on enter: the upstream rows the job's data comes from
        self.took_over: str | None = None
        self.lease: Lease | None = None
        self._finished = False
        self._releasing = False
        self._heartbeat: _Heartbeat | None = None
        self._lost = threading.Event()  # set when the database showed the lock is no longer ours
        self._db = threading.RLock()  # one statement at a time on the main connection (steps run in threads)
        self._handlers: dict[int, Any] = {}
        self._masker = SecretMasker(secrets)

    # -- enter ---------------------------------------------------------------------------------------------
    def __enter__(self) -> JobGuard:
        self._deadline = time.monotonic() + self.wait_for_upstream
        self._delay = _BACKOFF_START_S
        announced = False
        while True:
            self._check_upstream()
            outdated = self._outdated()
            self.outdated_by = None if self.force else outdated
            try:
                lease = self._acquire()
            except _NotAdmitted as refused:  # an upstream job is being run: wait, or exit 3
                if not announced and time.monotonic() < self._deadline:
                    self.log.info("waiting up to %g s: %s", self.wait_for_upstream, refused.what)
                    announced = True
                self._wait_or_refuse(refused.what)
                continue
            break
        if self.outdated_by:
            self.log.info("job %s succeeded before, but %s: running it again (no step of it is reused)",
                          self.job_id, self.outdated_by)
        elif self.incomplete:
            self.log.warning("job %s succeeded before, but %s: running it again (steps whose outputs are intact "
                             "are reused)", self.job_id, self.incomplete)
        if lease is None:
            return self  # already_succeeded
        self.lease = lease
        if lease.took_over:
            self.took_over = lease.takeover_description()
            self.log.warning("%s", self.took_over)
        self.log.info("locked job %s in %s (lease %s s, run %s)", self.job_id, self.tracker.describe(),
                      self.lease_seconds, self.run_id)
        try:
            self._start_heartbeat()
            self._install_signals()
        except BaseException:
            self._release("failed", "could not start the heartbeat")
            raise
        return self

    def _upstream_status(self) -> list[tuple[str, str]]:
        """(job id, status) of every required job that is not 'success'."""
        missing = []
        for upstream in self.requires:
            jid = pipeline_job_id(upstream, self.date)
            row = self.tracker.get(jid)
            status = (row.status or "unknown") if row is not None else "missing"
            if status != "success" and row is not None and row.locked and gone_here(row.holder_host,
                                                                                     row.holder_pid):
                # waiting cannot help: the run holding it died; only a rerun of it (or an unlock) moves it on
                status += (f", but its run's process on this host is gone: rerun it (it takes the job over "
                           f"once the lease expires) or 'run_pipeline.py unlock {jid}'")
            if row is None:
                status += self._unknown_pipeline(upstream)
            if status != "success":
                missing.append((jid, status))
            elif self.upstream_incomplete is not None and (why := self.upstream_incomplete(jid)):
                missing.append((jid, f"success, but {why}"))
        return missing

    def _unknown_pipeline(self, upstream: str) -> str:
        """``; the tracker has no job of pipeline 'x' at all (did you mean 'y'?)``: a `requires:` typo would
        otherwise read as "run it first" (and --wait-for-upstream would wait for nothing). Asked on refusal only."""
        pipelines = {key.pipeline for r in self.tracker.list_jobs() if (key := parse_job_id(r.job_id)) is not None}
        if upstream in pipelines:
            return ""
        return f"; the tracker has no job of pipeline '{upstream}' at all{did_you_mean(upstream, sorted(pipelines))}"

    def _check_upstream(self) -> None:
        if not self.requires:
            return
        announced = False
        while True:
            missing = self._upstream_status()
            if not missing:
                if announced:
                    self.log.info("upstream jobs of %s are now successful", self.job_id)
                return
            what = ", ".join(f"{jid} (status: {status})" for jid, status in missing)
            failed = [jid for jid, status in missing if status == "failed"]
            forget = (f"; if {failed[0]} should never have run (a date without input, a mistyped date), "
                      f"remove it with 'run_pipeline.py forget {failed[0]}'" if failed else "")
            # a job with no row at all: perhaps this run uses another tracker than the upstream's runs did (a
            # SQLite file of another working directory), so the message says which one it looked in
            where = (f" (looked in {self.tracker.describe()})"
                     if any(status.startswith("missing") for _jid, status in missing) else "")
            if not announced and time.monotonic() < self._deadline:
                self.log.info("waiting up to %g s for upstream job %s", self.wait_for_upstream, what)
                announced = True
            self._wait_or_refuse(f"upstream job {what} is not successful", forget + where)

    def _wait_or_refuse(self, what: str, after: str = "") -> None:
        """Sleep a little (backing off) while the --wait-for-upstream time lasts, else UpstreamNotReady."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            waited = f" after waiting {self.wait_for_upstream:g} s" if self.wait_for_upstream else ""
            hint = "" if self.wait_for_upstream else " (or use --wait-for-upstream SECONDS)"
            raise UpstreamNotReady(f"cannot run {self.job_id}: {what}{waited}; run it first{hint}{after}")
        time.sleep(min(self._delay, remaining))
        self._delay = min(self._delay * 1.5, _BACKOFF_MAX_S)

    def _outdated(self) -> str | None:
        """Why this job's earlier success no longer stands (see tracker.base.outdated_by), or None. Remembers the
        upstream rows it compared with: step_succeeded weighs the steps' rows against them too."""
        if not self.requires:
            return None
        with self._db:
            row = self.tracker.get(self.job_id)
            if self.reads_earlier:
                self.upstream = list(upstream_rows(self.tracker.list_jobs(), self.requires, self.date, earlier=True))
            else:
                self.upstream = [self.tracker.get(pipeline_job_id(up, self.date)) for up in self.requires]
        return outdated_by(row, self.upstream)

    def _acquire(self) -> Lease | None:
        row: JobRow | None = None
        rerun = self.force or self.outdated_by is not None or self.incomplete is not None
        for _ in range(_ACQUIRE_ATTEMPTS):
            lease = self.tracker.acquire(self.job_id, lease_seconds=self.lease_seconds, holder_host=self.host,
                                         holder_pid=self.pid, run_id=self.run_id, force=rerun,
                                         reads=None if self.reads is None else self.reads.text(),
                                         log_file=self.log_file, admit=self._admit)
            if lease is not None:
                return lease
            row = self.tracker.get(self.job_id)
            if row is None:
                continue  # deleted between the two statements: try again
            if not row.locked and row.status == "success" and not rerun:
                self.already_succeeded = True
                self.log.info("job %s already succeeded (at %s); nothing to do, use --force to run it again",
                              self.job_id, fmt_time(row.updated_time))
                return None
            if row.locked and not row.lease_expired(self.tracker.now()):
                break
            # unlocked (holder just released) or the lease just expired: try again
        raise AlreadyRunning(self._running_message(row))

    def _admit(self, view: TrackerView) -> None:
        """Refuses the run, under the tracker's admission lock, where it would overlap a related run:
        AlreadyRunning while a live run of another job reads this job's data (this run would rewrite it under
        that one); _NotAdmitted while the upstream data this run reads is being rewritten (or, taken since the
        check before, is no longer 'success')."""
        now = view.now()
        locked = view.locked_jobs()
        readers = readers_of(locked, self.job_id, now, gone_here)
        if readers:
            more = f" (and {len(readers) - 1} more)" if len(readers) > 1 else ""
            raise AlreadyRunning(
                f"job {self.job_id} is not run now: {run_line(readers[0])}{more} reads its data, which this run "
                f"would replace under it; run it again once that run has ended")
        if self.reads is None:
            return
        running = [row for row in running_upstream(locked, self.reads, now, gone_here) if row.job_id != self.job_id]
        if running:
            raise _NotAdmitted(f"upstream job {run_line(running[0])} is being run: this run reads "
                               f"{self.reads.describe()}")
        for upstream in self.requires:
            row = view.get(jid := pipeline_job_id(upstream, self.date))
            if row is None or row.status != "success":
                status = "missing" if row is None else row.status
                raise _NotAdmitted(f"upstream job {jid} (status: {status}) is not successful")

    def _running_message(self, row: JobRow | None) -> str:
        """Why the job is refused (exit 4). A holder that is a process of this host that no longer runs (killed
        with -9, crashed) is named as such, as ``status`` ("held (process gone)") and ``unlock`` name it: the
        run is not running, only its lock is left until its lease expires."""
        if row is None or not row.locked:
            return f"job {self.job_id} is being changed by another run; try again"
        since = fmt_time(row.started_time or row.updated_time)
        unlock = f"'run_pipeline.py unlock {self.job_id}'"
        if row.lease_expires is None:
            lease = f"its lock has no lease (set by an older version): clear it with {unlock}"
        else:
            left = (row.lease_expires - self.tracker.now()).total_seconds()
            lease = f"its lease expires at {fmt_time(row.lease_expires)} (in {max(left, 0):.0f} s)"
        if gone_here(row.holder_host, row.holder_pid):
            if row.lease_expires is not None:
                lease += f", after which the next run takes it over, or clear it now with {unlock}"
            return (f"job {self.job_id} is locked by a run on this host ({row.holder_host}, pid {row.holder_pid}, "
                    f"started {since}) whose process is gone (killed or crashed); {lease}")
        return f"job {self.job_id} is already running on {row.holder()} since {since}; {lease}"

    def _start_heartbeat(self) -> None:
        assert self.lease is not None
        hb = _Heartbeat(self.tracker.reopen, self.lease, self.lease_seconds, self.log,
                        on_lost=lambda: _cancel_spark_jobs(self.job_id, self.log))
        hb.start()
        self._heartbeat = hb

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._handlers[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._releasing:
            self.log.warning("signal %s received while releasing job %s; finishing the release", signum,
                             self.job_id)
            return
        self.log.warning("signal %s received: stopping job %s", signal.Signals(signum).name, self.job_id)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)

    def _restore_signals(self) -> None:
        for signum, previous in self._handlers.items():
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, previous)
        self._handlers.clear()

    # -- during the run ------------------------------------------------------------------------------------
    @property
    def lease_lost(self) -> bool:
        return self._lost.is_set() or (self._heartbeat is not None and self._heartbeat.lost.is_set())

    def step_succeeded(self, step: str) -> bool:
        """The step's row for this date is 'success' and no upstream job succeeded after it (the runner still
        checks its outputs exist)."""
        with self._db:
            row = self.tracker.get(step_job_id(self.pipeline, step, self.date))
        return succeeded_since(row, self.upstream)

    def steps_not_succeeded(self, steps: Iterable[str]) -> list[tuple[str, str]]:
        """(step, status) of each of ``steps`` whose row is not 'success' ('missing' without a row), or is but
        was computed before an upstream job's data changed: a run that leaves such steps behind (a --select run)
        has not brought the job up to date."""
        out = []
        for step in steps:
            with self._db:
                row = self.tracker.get(step_job_id(self.pipeline, step, self.date))
            status = "missing" if row is None else (row.status or "unknown")
            if status == "success" and not succeeded_since(row, self.upstream):
                status = "computed before its upstream data changed"
            if status != "success":
                out.append((step, status))
        return out

    def _check_lock(self, what: str) -> None:
        if self.lease is None:
            raise TrackerError(f"job {self.job_id} is not locked by this run; cannot record {what}")
        if self.lease_lost:
            raise LeaseLost(f"lost the lock of job {self.job_id}; stopping before {what}")

    @contextlib.contextmanager
    def _noting_loss(self) -> Iterator[None]:
        """A fenced write that found the lock gone: later calls fail fast, without the database."""
        try:
            yield
        except LeaseLost:
            self._lost.set()
            raise

    def assert_lock(self, what: str = "committing outputs") -> None:
        """LeaseLost unless the database still says our lock is ours: one small SELECT, asked right before an
        output commit (the heartbeat notices a lost lock only every lease/3 seconds, and a run stopped for
        longer than its lease notices nothing until it asks)."""
        self._check_lock(what)
        assert self.lease is not None
        with self._db:
            ours = self.tracker.holds(self.lease)
        if not ours:
            self._lost.set()
            raise LeaseLost(f"lost the lock of job {self.job_id} (unlocked by an operator, or taken over after "
                            f"our lease expired); stopping before {what}")

    def mark_step(self, step: str, status: str, message: str = "") -> None:
        """Record a step's status, only while our lock is still ours (else LeaseLost)."""
        validate_status(status)
        self._check_lock(f"step {step}")
        with self._db, self._noting_loss():
            self.tracker.set_status(step_job_id(self.pipeline, step, self.date), status,
                                    self._masker.mask(message), run_id=self.run_id, fence=self.lease)

    def invalidate_steps(self, steps: Iterable[str], message: str) -> list[str]:
        """Turn the 'success' marks of ``steps`` stale, before a step upstream of them rewrites its outputs.

        Done first, so a run killed or failing before it reaches them, or a --select run that leaves them out,
        cannot leave outputs computed from the old upstream data marked fresh. Only while our lock is ours
        (else LeaseLost). Returns the steps turned stale (rows missing or not 'success' stay as they are).
        """
        by_job = {step_job_id(self.pipeline, step, self.date): step for step in steps}
        if not by_job:
            return []
        self._check_lock(f"marking {', '.join(by_job.values())} {STALE}")
        with self._db, self._noting_loss():
            changed = self.tracker.invalidate(list(by_job), self._masker.mask(message), run_id=self.run_id,
                                              fence=self.lease)
        return [by_job[job] for job in changed]

    # -- end -----------------------------------------------------------------------------------------------
    def finish(self, status: str, message: str = "") -> None:
        """Record the final status and release our lock: 'success', 'failed', or 'stale' when the run succeeded
        but left steps of the job out of date (a --select run), so that the job is not taken as done."""
        validate_status(status)
        if status == "running":
            raise ValueError("finish() needs a final status: success, failed or stale")
        if self.lease is None or self._finished:
            return
        self._finished = True
        if not self._release(status, message):
            raise LeaseLost(f"job {self.job_id}: our lock was cleared or taken over before the end; "
                            f"status {status} was not recorded")

    def _release(self, status: str, message: str) -> bool:
        assert self.lease is not None
        self._releasing = True
        try:
            if self._heartbeat is not None:
                self._heartbeat.stop()
            with self._db:  # a connection the server closed is reopened by the backend: still released
                ok = self.tracker.release(self.lease, status, self._masker.mask(message))
        finally:
            self._releasing = False
        if ok:
            self.log.info("released job %s with status %s", self.job_id, status)
        else:
            self.log.error("job %s: the lock was no longer ours at release; status %s not recorded",
                           self.job_id, status)
        return ok

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self.lease is not None and not self._finished:
                self._finished = True
                if exc is None:
                    status, message = "success", ""
                elif isinstance(exc, KeyboardInterrupt):
                    status, message = "failed", stop_message(exc)
                else:
                    status, message = "failed", _one_line(exc)
                try:
                    self._release(status, message)
                except TrackerError as err:
                    if exc is None:
                        raise
                    self.log.error("could not release job %s: %s", self.job_id, err)
        finally:
            if self._heartbeat is not None:
                self._heartbeat.stop()
            self._restore_signals()
