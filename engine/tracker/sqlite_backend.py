"""Embedded job tracker in an SQLite file: the default when no [postgres] section is configured.

Same statements as PostgreSQL (upsert + RETURNING needs SQLite >= 3.35). The clock is SQLite's
``'now'`` (UTC, millisecond text 'YYYY-MM-DD HH:MM:SS.SSS', which compares correctly as text).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    TrackerView,
    audit_before,
    audit_table_name,
    clip_message,
    current_actor,
    validate_status,
    validate_table_name,
)

MIN_SQLITE = (3, 35, 0)
_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
_LEASE = "strftime('%Y-%m-%d %H:%M:%f', 'now', :lease)"
BUSY_TIMEOUT_S = 30.0
_AUDIT_DDL = ("CREATE TABLE IF NOT EXISTS {a} (id INTEGER PRIMARY KEY, audit_time TIMESTAMP NOT NULL, "
              "job_id VARCHAR NOT NULL, action VARCHAR(10) NOT NULL, actor VARCHAR, rows_before TEXT)")


def _ts(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _lease_modifier(seconds: float) -> str:
    return f"+{float(seconds):.3f} seconds"


class SqliteTracker(Tracker):
    """A tracker table in a local SQLite file; safe for many processes on one machine.

    ``read_only``: for ``status`` and ``plan``, which must not create or upgrade anything. An existing file is
    opened with ``mode=ro``; a missing one is not created (an empty in-memory database stands in for it, so
    every read finds no table and the clock still works).
    """

    def __init__(self, path: str | Path, table: str = "job_tracker", *, read_only: bool = False):
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise TrackerError(f"SQLite {sqlite3.sqlite_version} is too old for the job tracker "
                               f"(needs {'.'.join(map(str, MIN_SQLITE))} for upsert with RETURNING)")
        self.path = Path(path)
        self.table = validate_table_name(table)
        self.read_only = read_only
        self._q = f'"{self.table}"'
        try:
            self._conn = sqlite3.connect(self._target(), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                         check_same_thread=False, uri=read_only)
        except sqlite3.Error as exc:
            raise TrackerError(f"cannot open the job tracker SQLite file {self.path}: {exc}") from exc
        with self._errors():
            self._open_table(self._columns)

    def _target(self) -> str:
        """What to connect to: the file, read-only by URI when ``read_only`` (in memory when it is missing)."""
        if not self.read_only:
            return str(self.path)
        if not self.path.exists():
            return "file::memory:"
        return self.path.resolve().as_uri() + "?mode=ro"

    def describe(self) -> str:
        return f"SQLite {self.path} table {self.table}"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise TrackerError(f"job tracker {self.describe()}: {exc}".replace("\n", " ")) from exc

    def _columns(self) -> set[str]:
        return {r[1] for r in self._conn.execute(f"PRAGMA table_info({self._q})").fetchall()}

    def _ensure_schema(self) -> None:
        """Create the seed table if missing and add the columns this version needs, never dropping."""
        needed = {name for name, _ in EXTRA_COLUMNS}
        with self._errors():
            if needed <= self._columns():
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {self._q} (job_id VARCHAR PRIMARY KEY, status VARCHAR(10), "
                    "updated_time TIMESTAMP, lock_id UUID DEFAULT NULL)")
                have = self._columns()
                for name, sql_type in EXTRA_COLUMNS:
                    if name not in have:
                        self._conn.execute(f'ALTER TABLE {self._q} ADD COLUMN "{name}" {sql_type}')
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _one(self, sql: str, params: dict[str, Any] | Sequence[Any]) -> tuple[Any, ...] | None:
        with self._errors():
            return self._conn.execute(sql, params).fetchone()

    @staticmethod
    def _row(values: Sequence[Any]) -> JobRow:
        d = dict(zip(ROW_COLUMNS, values, strict=True))
        for key in ("updated_time", "lease_expires", "started_time"):
            d[key] = _ts(d[key])
        return JobRow(**d)

    def now(self) -> dt.datetime:
        value = self._one(f"SELECT {_NOW}", ())
        assert value is not None
        ts = _ts(value[0])
        assert ts is not None
        return ts

    def get(self, job_id: str) -> JobRow | None:
        if not self._has_table:
            return None
        r = self._one(f"SELECT {self._select} FROM {self._q} WHERE job_id = ?", (job_id,))
        return None if r is None else self._row(r)

    def lock_of(self, job_id: str) -> str | None:
        if not self._has_table:
            return None
        r = self._one(f"SELECT lock_id FROM {self._q} WHERE job_id = ?", (job_id,))
        return None if r is None or r[0] is None else str(r[0])

    def list_jobs(self) -> list[JobRow]:
        if not self._has_table:
            return []
        with self._errors():
            rows = self._conn.execute(f"SELECT {self._select} FROM {self._q} ORDER BY job_id").fetchall()
        return [self._row(r) for r in rows]

    def acquire(self, job_id: str, *, lease_seconds: float, holder_host: str, holder_pid: int,
                run_id: str | None = None, force: bool = False, reads: str | None = None,
                log_file: str | None = None, admit: Callable[[TrackerView], None] | None = None) -> Lease | None:
        self._writable()
        lock_id = str(uuid.uuid4())
        sql = (
            f"INSERT INTO {self._q} AS t (job_id, status, updated_time, lock_id, lease_expires, holder_host, "
            "holder_pid, run_id, message, started_time, prev_lock_id, prev_holder_host, prev_holder_pid, "
            "prev_lease_expires, reads, log_file) "
            f"VALUES (:job, 'running', {_NOW}, :lock, {_LEASE}, :host, :pid, :run, '', {_NOW}, "
            "NULL, NULL, NULL, NULL, :reads, :log) "
            "ON CONFLICT (job_id) DO UPDATE SET status = 'running', updated_time = excluded.updated_time, "
            "lock_id = excluded.lock_id, lease_expires = excluded.lease_expires, "
            "holder_host = excluded.holder_host, holder_pid = excluded.holder_pid, run_id = excluded.run_id, "
            "message = '', started_time = excluded.started_time, prev_lock_id = t.lock_id, "
            "prev_holder_host = CASE WHEN t.lock_id IS NULL THEN NULL ELSE t.holder_host END, "
            "prev_holder_pid = CASE WHEN t.lock_id IS NULL THEN NULL ELSE t.holder_pid END, "
            "prev_lease_expires = CASE WHEN t.lock_id IS NULL THEN NULL ELSE t.lease_expires END, "
            "reads = excluded.reads, log_file = excluded.log_file "
            "WHERE (t.lock_id IS NULL OR t.lease_expires < excluded.updated_time) "
            "AND (:force OR t.status IS NOT 'success') "
            f"RETURNING {', '.join(LEASE_COLUMNS)}"
        )
        params = {"job": job_id, "lock": lock_id, "lease": _lease_modifier(lease_seconds), "host": holder_host,
                  "pid": holder_pid, "run": run_id, "force": 1 if force else 0, "reads": reads, "log": log_file}
        r = self._one(sql, params) if admit is None else self._admitted(admit, sql, params)
        if r is None or r[0] != lock_id:
            return None
        got = dict(zip(LEASE_COLUMNS, r, strict=True))
        return Lease(job_id=job_id, lock_id=lock_id, expires=_ts(got["lease_expires"]),  # type: ignore[arg-type]
                     acquired_at=_ts(got["updated_time"]),  # type: ignore[arg-type]
                     prev_lock_id=got["prev_lock_id"], prev_holder_host=got["prev_holder_host"],
                     prev_holder_pid=got["prev_holder_pid"], prev_lease_expires=_ts(got["prev_lease_expires"]))

    def _admitted(self, admit: Callable[[TrackerView], None], sql: str,
                  params: dict[str, Any]) -> tuple[Any, ...] | None:
        """``admit`` then the acquire, in one write transaction: SQLite lets one writer in at a time, so
        admissions are serialised by the database itself."""
        with self._errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                admit(self)
                r = self._conn.execute(sql, params).fetchone()
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return r

    def locked_jobs(self) -> list[JobRow]:
        """The rows holding a lock (live or expired)."""
        if not self._has_table:
            return []
        with self._errors():
            rows = self._conn.execute(
                f"SELECT {self._select} FROM {self._q} WHERE lock_id IS NOT NULL ORDER BY job_id").fetchall()
        return [self._row(r) for r in rows]

    def renew(self, lease: Lease, lease_seconds: float) -> dt.datetime | None:
        self._writable()
        r = self._one(f"UPDATE {self._q} SET lease_expires = {_LEASE} WHERE job_id = :job AND lock_id = :lock "
                      "RETURNING lease_expires",
                      {"lease": _lease_modifier(lease_seconds), "job": lease.job_id, "lock": lease.lock_id})
        return None if r is None else _ts(r[0])

    def release(self, lease: Lease, status: str, message: str = "") -> bool:
        self._writable()
        validate_status(status)
        r = self._one(f"UPDATE {self._q} SET status = :status, updated_time = {_NOW}, lock_id = NULL, "
                      "lease_expires = NULL, message = :msg WHERE job_id = :job AND lock_id = :lock "
                      "RETURNING job_id",
                      {"status": status, "msg": clip_message(message), "job": lease.job_id,
                       "lock": lease.lock_id})
        return r is not None

    def set_status(self, job_id: str, status: str, message: str = "", *, run_id: str | None = None,
                   fence: Lease | None = None) -> None:
        self._writable()
        validate_status(status)
        sql = (
            f"INSERT INTO {self._q} AS t (job_id, status, updated_time, run_id, message, started_time) "
            f"SELECT :job, :status, {_NOW}, :run, :msg, {_NOW} "
            f"WHERE :fjob IS NULL OR EXISTS (SELECT 1 FROM {self._q} AS f "
            "WHERE f.job_id = :fjob AND f.lock_id = :flock) "
            "ON CONFLICT (job_id) DO UPDATE SET status = excluded.status, updated_time = excluded.updated_time, "
            "run_id = excluded.run_id, message = excluded.message, started_time = CASE "
            "WHEN excluded.status = 'running' THEN excluded.started_time ELSE t.started_time END "
            "RETURNING job_id"
        )
        r = self._one(sql, {"job": job_id, "status": status, "run": run_id, "msg": clip_message(message),
                            "fjob": fence.job_id if fence else None, "flock": fence.lock_id if fence else None})
        if r is None:
            assert fence is not None
            raise LeaseLost(f"lost the lock of job {fence.job_id} (lease expired and taken over, or unlocked "
                            f"by an operator); not recording {job_id} as {status}")

    def invalidate(self, job_ids: Sequence[str], message: str, *, run_id: str | None = None,
                   fence: Lease | None = None) -> list[str]:
        self._writable()
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return []
        params: dict[str, Any] = {f"j{i}": job for i, job in enumerate(ids)}
        params.update({"stale": STALE, "run": run_id, "msg": clip_message(message),
                       "fjob": fence.job_id if fence else None, "flock": fence.lock_id if fence else None})
        with self._errors():
            rows = self._conn.execute(
                f"UPDATE {self._q} SET status = :stale, updated_time = {_NOW}, run_id = :run, message = :msg "
                f"WHERE job_id IN ({', '.join(':j' + str(i) for i in range(len(ids)))}) AND status = 'success' "
                f"AND (:fjob IS NULL OR EXISTS (SELECT 1 FROM {self._q} AS f "
                "WHERE f.job_id = :fjob AND f.lock_id = :flock)) RETURNING job_id", params).fetchall()
        if not rows and fence is not None and not self.holds(fence):
            raise LeaseLost(f"lost the lock of job {fence.job_id} (lease expired and taken over, or unlocked "
                            f"by an operator); not marking {', '.join(ids)} stale")
        return sorted(r[0] for r in rows)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction holding the write lock from its start, so what it reads stays true until COMMIT."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _audit_table(self) -> str:
        """The quoted audit table name; asked before a change, so a name too long for it changes nothing."""
        return f'"{audit_table_name(self.table)}"'

    def _audit(self, table: str, job_id: str, action: str, actor: str | None, rows: Sequence[JobRow]) -> None:
        """Record an operator action inside the caller's transaction, creating the table the first time."""
        self._conn.execute(_AUDIT_DDL.format(a=table))
        self._conn.execute(f"INSERT INTO {table} (audit_time, job_id, action, actor, rows_before) "
                           f"VALUES ({_NOW}, ?, ?, ?, ?)",
                           (job_id, action, actor or current_actor(), audit_before(rows)))

    def unlock(self, job_id: str, message: str, *, lock_id: str | None = None, actor: str | None = None,
               steps: Sequence[str] = ()) -> bool:
        self._writable()
        audit = self._audit_table()
        where = "WHERE job_id = :job AND lock_id IS NOT NULL AND (:lock IS NULL OR lock_id = :lock)"
        params = {"msg": clip_message(message), "job": job_id, "lock": lock_id}
        ids = list(dict.fromkeys(steps))
        in_steps = f"WHERE status = 'running' AND job_id IN ({', '.join('?' * len(ids))})"
        with self._errors(), self._transaction():
            before = self._conn.execute(f"SELECT {', '.join(ROW_COLUMNS)} FROM {self._q} {where}", params).fetchone()
            if before is None:
                return False
            step_rows = [self._row(r) for r in self._conn.execute(
                f"SELECT {', '.join(ROW_COLUMNS)} FROM {self._q} {in_steps}", ids).fetchall()] if ids else []
            self._conn.execute(
                f"UPDATE {self._q} SET lock_id = NULL, lease_expires = NULL, updated_time = {_NOW}, "
                f"status = CASE WHEN status = 'running' THEN 'failed' ELSE status END, message = :msg {where}",
                params)
            if step_rows:
                self._conn.execute(
                    f"UPDATE {self._q} SET status = 'failed', updated_time = {_NOW}, message = ? {in_steps}",
                    [clip_message(f"its run was {message}"), *ids])
            self._audit(audit, job_id, "unlock", actor, [self._row(before), *step_rows])
        return True

    def forget(self, job_id: str, related: Sequence[str] = (), *, actor: str | None = None) -> list[str]:
        self._writable()
        audit = self._audit_table()
        ids = list(dict.fromkeys([job_id, *related]))
        params: dict[str, Any] = {f"j{i}": job for i, job in enumerate(ids)} | {"job": job_id}
        with self._errors(), self._transaction():
            rows = [self._row(r) for r in self._conn.execute(
                f"DELETE FROM {self._q} WHERE job_id IN ({', '.join(':j' + str(i) for i in range(len(ids)))}) "
                f"AND NOT EXISTS (SELECT 1 FROM {self._q} AS l WHERE l.job_id = :job AND l.lock_id IS NOT NULL) "
                f"RETURNING {', '.join(ROW_COLUMNS)}", params).fetchall()]
            if rows:
                self._audit(audit, job_id, "forget", actor, rows)
        return sorted(r.job_id for r in rows)

    def audit_entries(self) -> list[AuditEntry]:
        table = self._audit_table()
        with self._errors():
            if not self._conn.execute(f"PRAGMA table_info({table})").fetchall():
                return []  # nothing recorded yet (or a read-only open of a missing file)
            rows = self._conn.execute(
                f"SELECT {', '.join(AUDIT_COLUMNS)} FROM {table} ORDER BY audit_time, id").fetchall()
        return [AuditEntry(id=r[0], audit_time=_ts(r[1]), job_id=r[2], action=r[3],  # type: ignore[arg-type]
                           actor=r[4], rows_before=r[5]) for r in rows]

    def reopen(self) -> SqliteTracker:
        return SqliteTracker(self.path, self.table, read_only=self.read_only)

    def close(self) -> None:
        self._conn.close()
