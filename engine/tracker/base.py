"""The job tracker interface shared by the PostgreSQL and SQLite backends.

Why one interface: operations trust the ``job_tracker`` table, and the embedded default must behave exactly
like production. Times are the database's clock, as naive UTC timestamps (``now() AT TIME ZONE 'UTC'`` on
PostgreSQL, ``strftime(..., 'now')`` on SQLite), so holders on several machines compare leases against one
clock.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import re
import signal
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from engine.errors import TrackerError

STALE = "stale"
# 'stale': a step's outputs predate a recomputation of a step upstream of it (turned so by ``invalidate``), or a
# job whose run left such steps behind (a --select run): not 'success', so a rerun recomputes them
STATUSES = ("running", "success", "failed", STALE)
SEED_COLUMNS = ("job_id", "status", "updated_time", "lock_id")
# Columns this version adds to the seed table (same type names work on both databases).
EXTRA_COLUMNS = (
    ("lease_expires", "TIMESTAMP"), ("holder_host", "VARCHAR"), ("holder_pid", "INTEGER"),
    ("run_id", "VARCHAR"), ("message", "TEXT"), ("started_time", "TIMESTAMP"),
    ("prev_lock_id", "UUID"), ("prev_holder_host", "VARCHAR"), ("prev_holder_pid", "INTEGER"),
    ("prev_lease_expires", "TIMESTAMP"), ("reads", "TEXT"), ("log_file", "TEXT"),
)
ROW_COLUMNS = ("job_id", "status", "updated_time", "lock_id", "lease_expires", "holder_host", "holder_pid",
               "run_id", "message", "started_time", "reads", "log_file")
LEASE_COLUMNS = ("lock_id", "lease_expires", "updated_time", "prev_lock_id", "prev_holder_host",
                 "prev_holder_pid", "prev_lease_expires")
# The operator actions (unlock, forget) are recorded in ``<table>_audit``, in the same transaction as the change.
AUDIT_SUFFIX = "_audit"
AUDIT_ACTIONS = ("unlock", "forget")
AUDIT_COLUMNS = ("id", "audit_time", "job_id", "action", "actor", "rows_before")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_JOB_ID = re.compile(r"^(?P<pipeline>[A-Za-z0-9_\-]+?)(?:\.(?P<step>[A-Za-z0-9_\-]+))?_(?P<date>\d{4}-\d{2}-\d{2})$")
MESSAGE_MAX = 2000


class LeaseLost(TrackerError):
    """Our lock was cleared or taken over (operator unlock, or our lease expired) while we ran."""


class TrackerUnreachable(TrackerError):
    """The tracker's connection broke and could not be reopened (the database stays unreachable)."""


class InvalidTableName(TrackerError):
    """A configured table name is not a plain SQL identifier."""


class ReadOnlyViolation(TrackerError):
    """A write on a tracker opened read-only (``status``, ``plan``): a bug, refused before the database."""


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM so finally-paths (release, cleanup) run.

    A KeyboardInterrupt subclass so ``except Exception`` blocks in steps do not swallow it.
    """

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"terminated by signal {signum}")


def stop_message(exc: KeyboardInterrupt) -> str:
    """How a stopped run is recorded, by the guard and in the run record alike."""
    if isinstance(exc, Terminated):
        return f"terminated by {signal.Signals(exc.signum).name}"
    return "interrupted (Ctrl-C)"


def pipeline_job_id(pipeline: str, date: dt.date) -> str:
    """``preprocess_2020-08-06``: the job of one pipeline run for one processing date."""
    return f"{pipeline}_{date.isoformat()}"


def step_job_id(pipeline: str, step: str, date: dt.date) -> str:
    """``preprocess.eod_2020-08-06``: one step of that run, so a rerun can resume."""
    return f"{pipeline}.{step}_{date.isoformat()}"


@dataclass(frozen=True)
class JobKey:
    """The parts of a job id."""

    pipeline: str
    step: str | None
    date: dt.date


def parse_job_id(job_id: str) -> JobKey | None:
    """Split a job id into pipeline, step and date; None when it does not follow the convention."""
    m = _JOB_ID.match(job_id)
    if not m:
        return None
    try:
        date = dt.date.fromisoformat(m.group("date"))
    except ValueError:
        return None
    return JobKey(m.group("pipeline"), m.group("step"), date)


def validate_table_name(name: str) -> str:
    """Table names come from config: accept plain identifiers only, folded to lower case like PostgreSQL."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise InvalidTableName(
            f"job tracker table name {name!r} is not a valid SQL identifier "
            "(letters, digits and _, not starting with a digit, at most 63 characters)")
    return name.lower()


def audit_table_name(table: str) -> str:
    """``<table>_audit``. A table name too long for that suffix (identifiers end at 63 characters) keeps its
    first 48 characters plus 8 hex digits of its hash: an operator must never be kept from clearing a lock
    because of the name, and two long names sharing their start still get their own audit tables."""
    base = validate_table_name(table)
    if len(base) + len(AUDIT_SUFFIX) <= 63:
        return base + AUDIT_SUFFIX
    return f"{base[:48]}_{hashlib.sha1(base.encode()).hexdigest()[:8]}{AUDIT_SUFFIX}"


def operator() -> str:
    """``user@host``: who runs an operator command, as its row's message names them."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def current_actor() -> str:
    """``user@host pid N``: who an audit entry names (the pid tells two sessions of one user apart)."""
    return f"{operator()} pid {os.getpid()}"


def validate_status(status: str) -> str:
    if status not in STATUSES:
        raise ValueError(f"job status must be one of {', '.join(STATUSES)}, got {status!r}")
    return status


def clip_message(message: str) -> str:
    return message if len(message) <= MESSAGE_MAX else message[:MESSAGE_MAX - 3] + "..."


def fmt_time(value: dt.datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S") + " UTC"


def outdated_by(row: JobRow | None, upstream: Sequence[JobRow | None]) -> str | None:
    """Why a job that succeeded is out of date: a job it requires succeeded after it started (its outputs were
    computed from data that has since been replaced, or was being replaced while it read). None when it is up
    to date, or did not succeed.

    ``upstream`` holds the required jobs of the same date and, for a job that reads earlier dates too (see
    ``upstream_rows``), those of earlier dates: the earliest such date is named.
    """
    if row is None or row.status != "success" or row.updated_time is None:
        return None
    newer = _succeeded_after(read_from(row), upstream)
    if not newer:
        return None
    up = min(newer, key=lambda r: r.job_id.rsplit("_", 1)[-1])
    own, theirs = parse_job_id(row.job_id), parse_job_id(up.job_id)
    earlier = own is not None and theirs is not None and theirs.date < own.date
    what = "(an earlier date, which this job reads) succeeded" if earlier else "succeeded again"
    more = f" (and {len(newer) - 1} more)" if len(newer) > 1 else ""
    return (f"upstream job {up.job_id} {what} at {fmt_time(up.updated_time)}{more}, after "
            f"{row.job_id} started at {fmt_time(read_from(row))} (it succeeded at {fmt_time(row.updated_time)})")


def succeeded_since(row: JobRow | None, upstream: Sequence[JobRow | None]) -> bool:
    """The row (a step's) is 'success' and no upstream job succeeded after it started. A step computed before
    its upstream data was replaced is not reusable, even when the job's rerun that noticed it was interrupted."""
    if row is None or row.status != "success":
        return False
    return row.updated_time is None or not _succeeded_after(read_from(row), upstream)


def read_from(row: JobRow) -> dt.datetime:
    """When a job or step began reading its inputs: its start (an upstream job that succeeded while it ran may
    have replaced data under it), else, for rows written before start times were kept, its last update."""
    moment = row.started_time or row.updated_time
    assert moment is not None
    return moment


def _succeeded_after(moment: dt.datetime, upstream: Sequence[JobRow | None]) -> list[JobRow]:
    """The upstream rows that succeeded after ``moment``: the data computed at ``moment`` has been replaced."""
    return [up for up in upstream if up is not None and up.status == "success" and up.updated_time is not None
            and up.updated_time > moment]


def upstream_rows(rows: Iterable[JobRow], requires: Sequence[str], date: dt.date, *,
                  earlier: bool = False) -> list[JobRow]:
    """The rows of the jobs ``requires`` names for ``date`` and, when ``earlier`` (the job reads earlier
    dates' data too, e.g. a prior close), for every earlier date: what ``outdated_by`` compares with."""
    wanted = set(requires)
    out = []
    for r in rows:
        key = parse_job_id(r.job_id)
        if key is not None and key.step is None and key.pipeline in wanted \
                and (key.date == date or (earlier and key.date < date)):
            out.append(r)
    return out


def iso_utc(value: dt.datetime | None) -> str | None:
    """ISO 8601 with an explicit ``+00:00``: the tracker's naive times are UTC, and scripts must not guess."""
    if value is None:
        return None
    utc = value.astimezone(dt.UTC) if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    return utc.isoformat()


def row_select_list(have: set[str]) -> str:
    """The SELECT list of ``ROW_COLUMNS``, with NULL for those a table of an older version lacks.

    A read-only open does not upgrade the table, yet ``status`` and ``plan`` must still read it.
    """
    return ", ".join(c if c in have else f"NULL AS {c}" for c in ROW_COLUMNS)


@dataclass(frozen=True)
class JobRow:
    """One row of the tracker table (times are naive UTC from the database clock)."""

    job_id: str
    status: str | None
    updated_time: dt.datetime | None
    lock_id: str | None
    lease_expires: dt.datetime | None = None
    holder_host: str | None = None
    holder_pid: int | None = None
    run_id: str | None = None
    message: str | None = None
    started_time: dt.datetime | None = None
    reads: str | None = None  # what the run holding (or last holding) the lock reads: see ``Reads``
    log_file: str | None = None  # the log of the run that holds (or last held) the lock

    @property
    def locked(self) -> bool:
        return self.lock_id is not None

    def lease_expired(self, now: dt.datetime) -> bool:
        """A lock without a lease (set by an older version) never expires by itself: use unlock."""
        return self.lock_id is not None and self.lease_expires is not None and self.lease_expires < now

    def holder(self) -> str:
        host = self.holder_host or "unknown host"
        pid = f"pid {self.holder_pid}" if self.holder_pid is not None else "unknown pid"
        return f"{host} ({pid})"


def row_before(row: JobRow) -> dict[str, object]:
    """A row as an audit entry keeps it: every column, times as ISO 8601 with their UTC offset."""
    return {"job_id": row.job_id, "status": row.status, "updated_time": iso_utc(row.updated_time),
            "lock_id": row.lock_id, "lease_expires": iso_utc(row.lease_expires), "holder_host": row.holder_host,
            "holder_pid": row.holder_pid, "run_id": row.run_id, "started_time": iso_utc(row.started_time),
            "message": row.message, "reads": row.reads, "log_file": row.log_file}


def audit_before(rows: Sequence[JobRow]) -> str:
    """The ``rows_before`` column: a JSON list of the rows an operator action changed or deleted, by job id."""
    return json.dumps([row_before(r) for r in sorted(rows, key=lambda r: r.job_id)])


@dataclass(frozen=True)
class AuditEntry:
    """One row of ``<table>_audit``: who unlocked or forgot which job when, and what its rows were before."""

    id: int
    audit_time: dt.datetime
    job_id: str
    action: str
    actor: str | None
    rows_before: str | None

    def before(self) -> list[dict[str, object]]:
        """The rows as they were; a value this version did not write reads as one row holding the raw text."""
        try:
            rows = json.loads(self.rows_before or "[]")
        except ValueError:
            return [{"unparsed": self.rows_before}]
        return rows if isinstance(rows, list) and all(isinstance(r, dict) for r in rows) else [
            {"unparsed": self.rows_before}]


@dataclass(frozen=True)
class Lease:
    """Proof that we hold a job's lock; ``prev_*`` describe an expired holder we took over from."""

    job_id: str
    lock_id: str
    expires: dt.datetime
    acquired_at: dt.datetime
    prev_lock_id: str | None = None
    prev_holder_host: str | None = None
    prev_holder_pid: int | None = None
    prev_lease_expires: dt.datetime | None = None

    @property
    def took_over(self) -> bool:
        return self.prev_lock_id is not None

    def takeover_description(self) -> str:
        host = self.prev_holder_host or "unknown host"
        pid = self.prev_holder_pid if self.prev_holder_pid is not None else "?"
        return (f"took over job {self.job_id} from {host} (pid {pid}) whose lease expired at "
                f"{fmt_time(self.prev_lease_expires)}")


class TrackerView(Protocol):
    """The table as an admission check sees it (inside the admission's transaction)."""

    def now(self) -> dt.datetime: ...

    def get(self, job_id: str) -> JobRow | None: ...

    def locked_jobs(self) -> list[JobRow]:
        """The rows holding a lock (live or expired)."""
        ...


class Tracker(ABC):
    """A job tracker table: atomic locks with leases, statuses, and what operators need to see."""

    table: str
    read_only: bool = False

    def _writable(self) -> None:
        """Refuse a write on a read-only open here: the database may not even have the table."""
        if self.read_only:
            raise ReadOnlyViolation(f"job tracker {self.describe()} is opened read-only; not writing to it")

    def _open_table(self, existing_columns: Callable[[], set[str]]) -> None:
        """Create or upgrade the table, or on a read-only open take it as it is (no DDL): a missing table then
        reads as no jobs, and columns an older version lacks read as NULL."""
        if self.read_only:
            have = existing_columns()
        else:
            self._ensure_schema()
            have = set(ROW_COLUMNS)
        self._has_table = bool(have)  # False only on a read-only open: nothing recorded yet
        self._select = row_select_list(have)

    @abstractmethod
    def _ensure_schema(self) -> None:
        """Create the table if missing and add the columns of newer versions (never drops anything)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the table lives, for messages (never a password)."""

    @abstractmethod
    def now(self) -> dt.datetime:
        """The database clock, naive UTC."""

    @abstractmethod
    def get(self, job_id: str) -> JobRow | None: ...

    @abstractmethod
    def list_jobs(self) -> list[JobRow]:
        """Every row, ordered by job id."""

    def locked_jobs(self) -> list[JobRow]:
        """The rows holding a lock (live or expired), ordered by job id."""
        return [r for r in self.list_jobs() if r.locked]

    @abstractmethod
    def acquire(self, job_id: str, *, lease_seconds: float, holder_host: str, holder_pid: int,
                run_id: str | None = None, force: bool = False, reads: str | None = None,
                log_file: str | None = None, admit: Callable[[TrackerView], None] | None = None) -> Lease | None:
        """One atomic statement: create the row if missing and lock it where it is unlocked or its lease
        expired (and, unless ``force``, not already 'success'). None when someone else holds it or it is done.
        The row keeps ``reads`` (what the run reads, see engine.tracker.readers) and ``log_file``.

        With ``admit``: first, in the same transaction and under a lock that serialises every admission on the
        table, ``admit`` is shown the table (it raises to refuse the run). What one admission checks, the next
        one sees: a decision that depends on other jobs' locks cannot miss a lock taken at the same moment.
        """

    @abstractmethod
    def renew(self, lease: Lease, lease_seconds: float) -> dt.datetime | None:
        """Extend our lease; the new expiry, or None when the lock is no longer ours."""

    @abstractmethod
    def release(self, lease: Lease, status: str, message: str = "") -> bool:
        """Record the final status and clear our own lock_id only; False when it was no longer ours."""

    @abstractmethod
    def set_status(self, job_id: str, status: str, message: str = "", *, run_id: str | None = None,
                   fence: Lease | None = None) -> None:
        """Upsert a (step) row's status without locking it; with ``fence`` only while that lease is ours
        (else LeaseLost)."""

    @abstractmethod
    def invalidate(self, job_ids: Sequence[str], message: str, *, run_id: str | None = None,
                   fence: Lease | None = None) -> list[str]:
        """Turn the rows of ``job_ids`` that are 'success' into 'stale' with ``message``, in one statement (rows
        missing or in another status stay as they are); with ``fence`` only while that lease is ours (else
        LeaseLost). Returns the job ids changed, sorted."""

    def lock_of(self, job_id: str) -> str | None:
        """The job's current lock_id (None: unlocked or no row). Backends read just that column: it is asked
        before every output commit."""
        row = self.get(job_id)
        return None if row is None else row.lock_id

    def holds(self, lease: Lease) -> bool:
        """The database still says the lock is ours (not unlocked by an operator, not taken over)."""
        return self.lock_of(lease.job_id) == lease.lock_id

    @abstractmethod
    def unlock(self, job_id: str, message: str, *, lock_id: str | None = None, actor: str | None = None,
               steps: Sequence[str] = ()) -> bool:
        """Operator override: clear the lock (only ``lock_id`` when given); a running job becomes 'failed', and
        so do those of the step rows ``steps`` still 'running' (message ``its run was <message>``): the steps a
        killed run left. False when there was nothing to clear (then nothing changes). A cleared lock is recorded
        in the audit table in the same transaction, naming ``actor`` (default: this process,
        ``current_actor()``) and the rows as they were, the job's and the steps' it changed."""

    @abstractmethod
    def forget(self, job_id: str, related: Sequence[str] = (), *, actor: str | None = None) -> list[str]:
        """Operator override: delete the row of ``job_id`` and the rows ``related`` (its steps) in one statement,
        and only while ``job_id`` is not locked (a run holding it keeps every row). The job ids deleted, sorted.
        Deleted rows are recorded in the audit table in the same transaction, like ``unlock``.
        """

    @abstractmethod
    def audit_entries(self) -> list[AuditEntry]:
        """The audit table, oldest first; none while it does not exist (it is never created by reading)."""

    @abstractmethod
    def reopen(self) -> Tracker:
        """A new connection to the same table, e.g. for the heartbeat thread."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
