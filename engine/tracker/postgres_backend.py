"""Production job tracker in PostgreSQL through psycopg2.

The table name is composed with ``psycopg2.sql.Identifier``; every value is a bound parameter. The clock is
the server's (``now() AT TIME ZONE 'UTC'``), so leases of holders on several machines share one clock.

A session the server closed (restart, failover, network blip, ``pg_terminate_backend``) is reopened once per
statement and the statement retried: every write is conditional on the caller's lock_id (or idempotent), so a
retry cannot act for a run that lost its lock. A run survives a blip shorter than its lease.

Every round trip is bounded in time (see ``_bounded_wait``): connecting by ``[postgres] connect_timeout``, any
statement by ``[postgres] statement_timeout``, so a frozen server becomes the same error as a lost one. This
registers a psycopg2 wait callback, which is process-wide: once a tracker connected, every psycopg2 connection
of the process talks to its server without blocking (others wait as long as before, minus COPY and large
objects, which psycopg2 refuses under a wait callback; tickflow uses neither).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import select
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from engine.config import PostgresConfig
from engine.errors import TrackerError
from engine.tracker.base import (
    AUDIT_COLUMNS,
    EXTRA_COLUMNS,
    LEASE_COLUMNS,
    ROW_COLUMNS,
    STALE,
    AuditEntry,
    JobRow,
    Lease,
    LeaseLost,
    Tracker,
    TrackerUnreachable,
    TrackerView,
    audit_before,
    audit_table_name,
    clip_message,
    current_actor,
    validate_status,
    validate_table_name,
)

_NOW = "(now() AT TIME ZONE 'UTC')"
_LEASE = f"({_NOW} + %(lease)s * interval '1 second')"
log = logging.getLogger("tickflow.tracker")
_HAVE_COLUMNS = ("SELECT column_name FROM information_schema.columns "
                 "WHERE table_schema = current_schema() AND table_name = %(name)s")
_AUDIT_DDL = ("CREATE TABLE IF NOT EXISTS {a} (id BIGSERIAL PRIMARY KEY, audit_time TIMESTAMP NOT NULL, "
              "job_id VARCHAR NOT NULL, action VARCHAR(10) NOT NULL, actor VARCHAR, rows_before TEXT)")
T = TypeVar("T")
# Create the row if missing and lock it where it is unlocked or its lease expired (and, unless forced, not done).
_ACQUIRE = (
    "INSERT INTO {t} AS t (job_id, status, updated_time, lock_id, lease_expires, holder_host, "
    "holder_pid, run_id, message, started_time, prev_lock_id, prev_holder_host, prev_holder_pid, "
    "prev_lease_expires, reads, log_file) "
    f"VALUES (%(job)s, 'running', {_NOW}, %(lock)s, {_LEASE}, %(host)s, %(pid)s, %(run)s, '', {_NOW}, "
    "NULL, NULL, NULL, NULL, %(reads)s, %(log)s) "
    "ON CONFLICT (job_id) DO UPDATE SET status = 'running', updated_time = EXCLUDED.updated_time, "
    "lock_id = EXCLUDED.lock_id, lease_expires = EXCLUDED.lease_expires, "
    "holder_host = EXCLUDED.holder_host, holder_pid = EXCLUDED.holder_pid, run_id = EXCLUDED.run_id, "
    "message = '', started_time = EXCLUDED.started_time, prev_lock_id = t.lock_id, "
    "prev_holder_host = CASE WHEN t.lock_id IS NULL THEN NULL ELSE t.holder_host END, "
    "prev_holder_pid = CASE WHEN t.lock_id IS NULL THEN NULL ELSE t.holder_pid END, "
    "prev_lease_expires = CASE WHEN t.lock_id IS NULL THEN NULL ELSE t.lease_expires END, "
    "reads = EXCLUDED.reads, log_file = EXCLUDED.log_file "
    "WHERE (t.lock_id IS NULL OR t.lease_expires < EXCLUDED.updated_time) "
    "AND (%(force)s OR t.status IS DISTINCT FROM 'success') "
    f"RETURNING {', '.join(LEASE_COLUMNS)}"
)


def _first_line(exc: BaseException, secret: str) -> str:
    """psycopg2 messages span lines; keep the first meaningful one and never echo a password."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text.replace(secret, "***") if secret else text


# A silently dropped link (a firewall, a lost host) would otherwise block a statement, and with it the heartbeat,
# until the kernel gives up after many minutes, long after the lease expired and another run took the job.
# Keepalives and a TCP user timeout turn it into a connection error within about 30 s, which the reconnect
# path handles like a server restart.
DEAD_LINK_DETECTION = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
                       "tcp_user_timeout": 30_000}


# A frozen server (its processes stopped, or a hung host whose kernel still acknowledges packets) keeps the link
# healthy: keepalives and the TCP user timeout never fire, nor can the server's own statement_timeout. So the
# tracker's sessions wait for the server in Python, with a deadline: psycopg2 drives libpq without blocking and
# hands every wait to the registered wait callback. One that gives up raises OperationalError, on which psycopg2
# closes the session; the statement's retry then reconnects (bounded by connect_timeout), as after a restart.
class _BoundedConnection(psycopg2.extensions.connection):
    """A tracker session: ``_bounded_wait`` gives up on connecting after ``connect_s`` seconds (None: never)
    and on any one statement after ``statement_s``."""

    def __init__(self, dsn: str, *args: Any, connect_s: float | None, statement_s: float, **kwargs: Any):
        self.tickflow_limits = (connect_s, statement_s)  # before connecting: the callback reads it meanwhile
        super().__init__(dsn, *args, **kwargs)


_callback_lock = threading.Lock()
_other_wait: Callable[[Any], Any] | None = None  # a wait callback registered before ours, for others' connections


def _connect_limit(timeout: object) -> float | None:
    """libpq's connect_timeout: zero, negative or none waits for ever (also under a wait callback, where libpq
    itself no longer applies it)."""
    try:
        seconds = float(str(timeout))
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def _bounded_wait(conn: Any) -> None:
    """psycopg2's wait callback (process-wide): ``poll()`` the connection and wait in ``select`` until the
    round trip (connecting, or one statement) is done. A tracker session gives up at its deadline with an
    OperationalError naming the setting. Any other connection waits as libpq would (connect_timeout from its
    parameters while connecting, else for ever), or by the wait callback registered before ours.

    A signal whose handler raises (Ctrl-C, SIGTERM) is held until the round trip ends (answered or timed out)
    and raised then, as with libpq's own blocking wait: a statement is never cut off halfway, where it might
    or might not have been applied. (Raised from here, it closes the session: the next statement reconnects.)
    Not ``conn.cancel()``: it would block on a frozen server too."""
    limits = getattr(conn, "tickflow_limits", None)
    connecting = conn.status == psycopg2.extensions.STATUS_SETUP
    if limits is None:
        if _other_wait is not None:
            _other_wait(conn)
            return
        limit = _connect_limit(psycopg2.extensions.parse_dsn(conn.dsn).get("connect_timeout")) if connecting \
            else None
        setting = "connect_timeout"
    else:
        limit = limits[0] if connecting else limits[1]
        setting = "[postgres] connect_timeout" if connecting else "[postgres] statement_timeout"
    deadline = None if limit is None else time.monotonic() + limit
    held: BaseException | None = None
    while True:
        try:
            state = conn.poll()
            if state == psycopg2.extensions.POLL_OK:
                break
            if state == psycopg2.extensions.POLL_READ:
                ready = ([conn.fileno()], [], [])
            elif state == psycopg2.extensions.POLL_WRITE:
                ready = ([], [conn.fileno()], [])  # the socket may change while connecting: asked every time
            else:
                raise psycopg2.OperationalError(f"bad state from poll: {state}")
            if deadline is None:
                select.select(*ready)
                continue
            left = deadline - time.monotonic()
            if left <= 0 or select.select(*ready, left) == ([], [], []):
                what = "while connecting" if connecting else "to a statement"
                raise psycopg2.OperationalError(f"timeout expired: no answer from the server {what} within "
                                                f"{limit:g} s ({setting})")
        except psycopg2.Error:
            if held is not None:
                raise held from None
            raise
        except (KeyboardInterrupt, SystemExit) as exc:  # a signal handler's (Terminated is a KeyboardInterrupt)
            if held is None:
                held = exc
    if held is not None:
        raise held


def _install_bounded_wait() -> None:
    """Register ``_bounded_wait`` (again, should another wait callback have replaced it meanwhile)."""
    global _other_wait
    with _callback_lock:
        current = psycopg2.extensions.get_wait_callback()
        if current is not _bounded_wait:
            _other_wait = current
            psycopg2.extensions.set_wait_callback(_bounded_wait)


class _CursorView:
    """The table as an admission sees it: read through the admission transaction's cursor."""

    def __init__(self, tracker: PostgresTracker, cur: Any):
        self._tracker = tracker
        self._cur = cur

    def _rows(self, where: str, params: dict[str, Any]) -> list[JobRow]:
        self._cur.execute(self._tracker._compose(f"SELECT {self._tracker._select} FROM {{t}} {where}"), params)
        return [self._tracker._row(r) for r in self._cur.fetchall()]

    def now(self) -> dt.datetime:
        self._cur.execute(f"SELECT {_NOW}")
        return self._cur.fetchone()[0]

    def get(self, job_id: str) -> JobRow | None:
        rows = self._rows("WHERE job_id = %(job)s", {"job": job_id})
        return rows[0] if rows else None

    def locked_jobs(self) -> list[JobRow]:
        return self._rows("WHERE lock_id IS NOT NULL ORDER BY job_id", {})


class PostgresTracker(Tracker):
    """The ``job_tracker`` table in PostgreSQL (autocommit: every statement is its own transaction, but for
    ``unlock`` and ``forget``, whose audit entry is written in the transaction of their change).

    ``read_only``: for ``status`` and ``plan``: no CREATE/ALTER (a missing table reads as empty, missing
    columns as NULL), and the session itself is read-only so the server refuses any write too.
    """

    def __init__(self, config: PostgresConfig, *, read_only: bool = False):
        self.config = config
        self.read_only = read_only
        self.table = validate_table_name(config.job_tracker_table_name)
        self._t = sql.Identifier(self.table)
        self._lock = threading.RLock()  # the session may be swapped by a reconnect: one statement at a time
        self.reconnects = 0
        try:
            self._conn = self._connect()
        except psycopg2.Error as exc:
            raise TrackerError(f"cannot connect to the PostgreSQL job tracker at {config.describe()}: "
                               f"{_first_line(exc, config.password)}") from None
        self._open_table(lambda: {r[0] for r in self._exec(_HAVE_COLUMNS, {"name": self.table})})

    def _connect(self) -> Any:
        """A new autocommit session, read-only when the tracker is (the server then refuses any write too)."""
        cfg = self.config
        _install_bounded_wait()
        bounded = functools.partial(_BoundedConnection, connect_s=_connect_limit(cfg.connect_timeout),
                                    statement_s=float(cfg.statement_timeout))
        conn = psycopg2.connect(host=cfg.host, port=cfg.port, dbname=cfg.database, user=cfg.user,
                                password=cfg.password or None, connect_timeout=cfg.connect_timeout,
                                application_name="tickflow-tracker", connection_factory=bounded,
                                **DEAD_LINK_DETECTION)
        try:
            conn.autocommit = True
            if self.read_only:
                conn.set_session(readonly=True)
        except BaseException:
            conn.close()
            raise
        return conn

    def describe(self) -> str:
        return f"PostgreSQL {self.config.describe()} table {self.table}"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg2.Error as exc:
            raise TrackerError(f"job tracker {self.describe()}: "
                               f"{_first_line(exc, self.config.password)}") from None

    def _broken(self, exc: psycopg2.Error) -> bool:
        """The session itself is gone (not a statement error on a live session, e.g. a timeout)."""
        return isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError) and bool(self._conn.closed)

    def _reconnect(self, exc: psycopg2.Error) -> None:
        """Replace a session the server closed; TrackerUnreachable (one line, where) when that fails too."""
        lost = _first_line(exc, self.config.password)
        with contextlib.suppress(psycopg2.Error):
            self._conn.close()
        try:
            self._conn = self._connect()
        except psycopg2.Error as err:
            raise TrackerUnreachable(
                f"lost the connection to the PostgreSQL job tracker at {self.config.describe()} ({lost}) and "
                f"could not reconnect: {_first_line(err, self.config.password)}") from None
        self.reconnects += 1
        log.warning("job tracker %s: the connection was lost (%s); reconnected", self.describe(), lost)

    def _compose(self, query: str, audit: str | None = None) -> sql.Composed:
        """``{t}`` is the tracker table, ``{a}`` the audit table (when ``audit`` names it)."""
        if audit is None:
            return sql.SQL(query).format(t=self._t)
        return sql.SQL(query).format(t=self._t, a=sql.Identifier(audit))

    def _exec(self, query: str, params: dict[str, Any] | None = None, *,
              audit: str | None = None) -> list[tuple[Any, ...]]:
        """Run one statement; a session the server closed is reopened and the statement retried once."""
        composed = self._compose(query, audit)
        return self._retrying(lambda: self._fetch(composed, params))

    def _transaction(self, body: Callable[[Any], T]) -> T:
        """Run ``body(cursor)`` as one transaction. A session the server closed is reopened and the whole
        transaction retried once: the operator statements are conditional (on the lock, on the rows being
        there), so a retry after a COMMIT that did land changes nothing and records nothing twice."""
        return self._retrying(lambda: self._run_transaction(body))

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """``attempt()``, and once more on a new session when the server closed this one; any other database
        error is a TrackerError naming the tracker (never the password)."""
        with self._lock:
            try:
                return attempt()
            except psycopg2.Error as exc:
                if not self._broken(exc):
                    raise TrackerError(f"job tracker {self.describe()}: "
                                       f"{_first_line(exc, self.config.password)}") from None
                self._reconnect(exc)
            with self._errors():
                return attempt()

    def _run_transaction(self, body: Callable[[Any], T]) -> T:
        with self._conn.cursor() as cur:
            cur.execute("BEGIN")
            try:
                result = body(cur)
            except BaseException:
                if not self._conn.closed:
                    with contextlib.suppress(psycopg2.Error):
                        cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
            return result

    def _fetch(self, composed: sql.Composable, params: dict[str, Any] | None) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(composed, params)
            return cur.fetchall() if cur.description is not None else []

    def _ensure_schema(self) -> None:
        """Create the seed table if missing and add missing columns in place (serialised by an advisory
        lock so racing first runs do not collide), never dropping anything."""
        needed = {name for name, _ in EXTRA_COLUMNS}
        if needed <= {r[0] for r in self._exec(_HAVE_COLUMNS, {"name": self.table})}:
            return
        with self._errors(), self._conn.cursor() as cur:
            cur.execute("BEGIN")
            try:
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("tickflow.tracker." + self.table,))
                cur.execute(sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {t} (job_id VARCHAR PRIMARY KEY, status VARCHAR(10), "
                    "updated_time TIMESTAMP, lock_id UUID DEFAULT NULL)").format(t=self._t))
                for name, sql_type in EXTRA_COLUMNS:
                    cur.execute(sql.SQL("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {c} " + sql_type).format(
                        t=self._t, c=sql.Identifier(name)))
                cur.execute("COMMIT")
            except BaseException:
                if not self._conn.closed:  # a session given up on (statement_timeout) is closed already
                    with contextlib.suppress(psycopg2.Error):
                        cur.execute("ROLLBACK")
                raise

    @staticmethod
    def _row(values: tuple[Any, ...]) -> JobRow:
        d = dict(zip(ROW_COLUMNS, values, strict=True))
        d["lock_id"] = None if d["lock_id"] is None else str(d["lock_id"])
        return JobRow(**d)

    def now(self) -> dt.datetime:
        return self._exec(f"SELECT {_NOW}")[0][0]

    def get(self, job_id: str) -> JobRow | None:
        if not self._has_table:
            return None
        rows = self._exec(f"SELECT {self._select} FROM {{t}} WHERE job_id = %(job)s", {"job": job_id})
        return self._row(rows[0]) if rows else None

    def lock_of(self, job_id: str) -> str | None:
        if not self._has_table:
            return None
        rows = self._exec("SELECT lock_id FROM {t} WHERE job_id = %(job)s", {"job": job_id})
        return None if not rows or rows[0][0] is None else str(rows[0][0])

    def list_jobs(self) -> list[JobRow]:
        if not self._has_table:
            return []
        return [self._row(r) for r in self._exec(f"SELECT {self._select} FROM {{t}} ORDER BY job_id")]

    def acquire(self, job_id: str, *, lease_seconds: float, holder_host: str, holder_pid: int,
                run_id: str | None = None, force: bool = False, reads: str | None = None,
                log_file: str | None = None, admit: Callable[[TrackerView], None] | None = None) -> Lease | None:
        self._writable()
        lock_id = str(uuid.uuid4())
        composed = self._compose(_ACQUIRE)
        params = {"job": job_id, "lock": lock_id, "lease": float(lease_seconds), "host": holder_host,
                  "pid": holder_pid, "run": run_id, "force": bool(force), "reads": reads, "log": log_file}
        if admit is None:
            rows = self._retrying(lambda: self._fetch(composed, params))
        else:
            def body(cur: Any) -> list[tuple[Any, ...]]:
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("tickflow.admission." + self.table,))
                admit(_CursorView(self, cur))
                cur.execute(composed, params)
                return cur.fetchall()

            rows = self._transaction(body)
        if not rows or str(rows[0][0]) != lock_id:
            return None
        got = dict(zip(LEASE_COLUMNS, rows[0], strict=True))
        prev = got["prev_lock_id"]
        return Lease(job_id=job_id, lock_id=lock_id, expires=got["lease_expires"], acquired_at=got["updated_time"],
                     prev_lock_id=None if prev is None else str(prev), prev_holder_host=got["prev_holder_host"],
                     prev_holder_pid=got["prev_holder_pid"], prev_lease_expires=got["prev_lease_expires"])

    def renew(self, lease: Lease, lease_seconds: float) -> dt.datetime | None:
        self._writable()
        rows = self._exec(f"UPDATE {{t}} SET lease_expires = {_LEASE} WHERE job_id = %(job)s "
                          "AND lock_id = %(lock)s RETURNING lease_expires",
                          {"lease": float(lease_seconds), "job": lease.job_id, "lock": lease.lock_id})
        return rows[0][0] if rows else None

    def release(self, lease: Lease, status: str, message: str = "") -> bool:
        self._writable()
        validate_status(status)
        rows = self._exec(f"UPDATE {{t}} SET status = %(status)s, updated_time = {_NOW}, lock_id = NULL, "
                          "lease_expires = NULL, message = %(msg)s WHERE job_id = %(job)s AND lock_id = %(lock)s "
                          "RETURNING job_id",
                          {"status": status, "msg": clip_message(message), "job": lease.job_id,
                           "lock": lease.lock_id})
        return bool(rows)

    def set_status(self, job_id: str, status: str, message: str = "", *, run_id: str | None = None,
                   fence: Lease | None = None) -> None:
        self._writable()
        validate_status(status)
        query = (
            "INSERT INTO {t} AS t (job_id, status, updated_time, run_id, message, started_time) "
            f"SELECT %(job)s, %(status)s, {_NOW}, %(run)s, %(msg)s, {_NOW} "
            "WHERE %(fjob)s IS NULL OR EXISTS (SELECT 1 FROM {t} AS f "
            "WHERE f.job_id = %(fjob)s AND f.lock_id = %(flock)s) "
            "ON CONFLICT (job_id) DO UPDATE SET status = EXCLUDED.status, updated_time = EXCLUDED.updated_time, "
            "run_id = EXCLUDED.run_id, message = EXCLUDED.message, started_time = CASE "
            "WHEN EXCLUDED.status = 'running' THEN EXCLUDED.started_time ELSE t.started_time END "
            "RETURNING job_id"
        )
        rows = self._exec(query, {"job": job_id, "status": status, "run": run_id, "msg": clip_message(message),
                                  "fjob": fence.job_id if fence else None,
                                  "flock": fence.lock_id if fence else None})
        if not rows:
            assert fence is not None
            raise LeaseLost(f"lost the lock of job {fence.job_id} (lease expired and taken over, or unlocked "
                            f"by an operator); not recording {job_id} as {status}")

    def invalidate(self, job_ids: Sequence[str], message: str, *, run_id: str | None = None,
                   fence: Lease | None = None) -> list[str]:
        self._writable()
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return []
        rows = self._exec(
            f"UPDATE {{t}} SET status = %(stale)s, updated_time = {_NOW}, run_id = %(run)s, message = %(msg)s "
            "WHERE job_id = ANY(%(jobs)s) AND status = 'success' AND (%(fjob)s IS NULL OR EXISTS "
            "(SELECT 1 FROM {t} AS f WHERE f.job_id = %(fjob)s AND f.lock_id = %(flock)s)) RETURNING job_id",
            {"stale": STALE, "run": run_id, "msg": clip_message(message), "jobs": ids,
             "fjob": fence.job_id if fence else None, "flock": fence.lock_id if fence else None})
        if not rows and fence is not None and not self.holds(fence):
            raise LeaseLost(f"lost the lock of job {fence.job_id} (lease expired and taken over, or unlocked "
                            f"by an operator); not marking {', '.join(ids)} stale")
        return sorted(r[0] for r in rows)

    def _audit(self, cur: Any, audit: str, job_id: str, action: str, actor: str | None,
               rows: Sequence[JobRow]) -> None:
        """Record an operator action inside the caller's transaction, creating the table the first time
        (serialised by an advisory lock: racing CREATE TABLE IF NOT EXISTS can collide)."""
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("tickflow.tracker." + audit,))
        cur.execute(self._compose(_AUDIT_DDL, audit))
        cur.execute(self._compose("INSERT INTO {a} (audit_time, job_id, action, actor, rows_before) "
                                  f"VALUES ({_NOW}, %(job)s, %(action)s, %(actor)s, %(before)s)", audit),
                    {"job": job_id, "action": action, "actor": actor or current_actor(),
                     "before": audit_before(rows)})

    def unlock(self, job_id: str, message: str, *, lock_id: str | None = None, actor: str | None = None,
               steps: Sequence[str] = ()) -> bool:
        self._writable()
        audit = audit_table_name(self.table)  # before any change: a name too long for it changes nothing
        where = "WHERE job_id = %(job)s AND lock_id IS NOT NULL AND (%(lock)s IS NULL OR lock_id = %(lock)s)"
        params = {"msg": clip_message(message), "job": job_id, "lock": lock_id, "steps": list(dict.fromkeys(steps)),
                  "step_msg": clip_message(f"its run was {message}")}
        in_steps = "WHERE status = 'running' AND job_id = ANY(%(steps)s)"

        def body(cur: Any) -> bool:
            cur.execute(self._compose(f"SELECT {', '.join(ROW_COLUMNS)} FROM {{t}} {where} FOR UPDATE"), params)
            before = cur.fetchone()
            if before is None:
                return False
            step_rows: list[JobRow] = []
            if params["steps"]:
                cur.execute(self._compose(f"SELECT {', '.join(ROW_COLUMNS)} FROM {{t}} {in_steps} FOR UPDATE"),
                            params)
                step_rows = [self._row(r) for r in cur.fetchall()]
            cur.execute(self._compose(
                f"UPDATE {{t}} SET lock_id = NULL, lease_expires = NULL, updated_time = {_NOW}, "
                f"status = CASE WHEN status = 'running' THEN 'failed' ELSE status END, message = %(msg)s {where}"),
                params)
            if step_rows:
                cur.execute(self._compose(
                    f"UPDATE {{t}} SET status = 'failed', updated_time = {_NOW}, message = %(step_msg)s {in_steps}"),
                    params)
            self._audit(cur, audit, job_id, "unlock", actor, [self._row(before), *step_rows])
            return True

        return self._transaction(body)

    def forget(self, job_id: str, related: Sequence[str] = (), *, actor: str | None = None) -> list[str]:
        self._writable()
        audit = audit_table_name(self.table)

        def body(cur: Any) -> list[JobRow]:
            cur.execute(self._compose(
                "DELETE FROM {t} WHERE job_id = ANY(%(jobs)s) AND NOT EXISTS "
                "(SELECT 1 FROM {t} AS l WHERE l.job_id = %(job)s AND l.lock_id IS NOT NULL) "
                f"RETURNING {', '.join(ROW_COLUMNS)}"),
                {"jobs": list(dict.fromkeys([job_id, *related])), "job": job_id})
            rows = [self._row(r) for r in cur.fetchall()]
            if rows:
                self._audit(cur, audit, job_id, "forget", actor, rows)
            return rows

        return sorted(r.job_id for r in self._transaction(body))

    def audit_entries(self) -> list[AuditEntry]:
        audit = audit_table_name(self.table)
        if not self._exec(_HAVE_COLUMNS, {"name": audit}):
            return []  # nothing recorded yet; a read-only open never creates it
        rows = self._exec(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM {{a}} ORDER BY audit_time, id", audit=audit)
        return [AuditEntry(id=r[0], audit_time=r[1], job_id=r[2], action=r[3], actor=r[4], rows_before=r[5])
                for r in rows]

    def reopen(self) -> PostgresTracker:
        return PostgresTracker(self.config, read_only=self.read_only)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
