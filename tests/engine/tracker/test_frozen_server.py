"""A frozen PostgreSQL (its processes stopped, a hung host whose kernel still acknowledges packets) is an error
within ``[postgres] statement_timeout`` (+ ``connect_timeout`` for the reconnect), never a silent hang.

A throwaway server of our own is frozen with SIGSTOP (never the shared one). Every call that could hang runs in
a thread joined with a deadline, so an unbounded wait fails its test (after HANG_S) instead of hanging the
suite: the server is thawed on the way out, which ends the call.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import psycopg2
import pytest

from engine.config import PostgresConfig
from engine.errors import TrackerError
from engine.tracker import JobGuard
from engine.tracker.base import TrackerUnreachable
from engine.tracker.postgres_backend import PostgresTracker
from tests.engine.tracker.test_contract import wait_until
from tests.pg import PgServer, ThrowawayServer, create_database, start_or_skip

SECRET = "s3cret-Pa55word"  # trust auth: sent nowhere, yet it must never show in a message
DATE = dt.date(2020, 8, 6)
JOB = "analyze_2020-08-06"
STATEMENT_S = 2
HANG_S = 30.0  # a bound on a hang, not a speed target: expected are about STATEMENT_S + connect_timeout (3 s)


class InThread:
    """``call()`` in a daemon thread: its result or exception, and how long it took."""

    def __init__(self, call: Callable[[], Any]):
        self.result: Any = None
        self.error: BaseException | None = None
        self.elapsed: float | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True, name="frozen-server-call")
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        start = time.monotonic()
        try:
            self.result = call()
        except BaseException as exc:
            self.error = exc
        finally:
            self.elapsed = time.monotonic() - start

    def finished_within(self, seconds: float) -> bool:
        self._thread.join(seconds)
        return not self._thread.is_alive()

    def reap(self) -> None:
        """After the server thawed: an unbounded call ends now (the server answers at last)."""
        self._thread.join(60)


@dataclass
class Frozen:
    srv: ThrowawayServer
    server: PgServer
    config: PostgresConfig  # statement_timeout STATEMENT_S, connect_timeout 3, a password


@pytest.fixture(scope="module")
def freezable() -> Iterator[Frozen]:
    srv = ThrowawayServer()
    server = start_or_skip(srv)
    try:
        cfg = replace(server.config(create_database(server)), password=SECRET, statement_timeout=STATEMENT_S)
        yield Frozen(srv, server, cfg)
    finally:
        srv.stop()


@pytest.fixture
def frozen_cfg(freezable: Frozen) -> PostgresConfig:
    return replace(freezable.config, job_tracker_table_name=f"jt_{uuid.uuid4().hex[:10]}")


def check_one_line(exc: BaseException | None, cfg: PostgresConfig) -> str:
    assert isinstance(exc, TrackerError), repr(exc)
    msg = str(exc)
    assert "\n" not in msg and SECRET not in msg, msg
    for part in (f"host={cfg.host}", f"port={cfg.port}", f"database={cfg.database}"):
        assert part in msg, (part, msg)
    assert exc.exit_code == 2
    return msg


def in_frozen_server(freezable: Frozen, call: Callable[[], Any]) -> InThread:
    """``call()`` while the server is frozen; it must end within HANG_S (the server is thawed after)."""
    with freezable.srv.frozen():
        running = InThread(call)
        finished = running.finished_within(HANG_S)
    running.reap()
    assert finished, f"a tracker call to a frozen server still waited after {HANG_S} s"
    assert running.elapsed is not None and running.elapsed < HANG_S
    return running


def test_a_statement_to_a_frozen_server_is_one_clear_error_within_its_bound(freezable: Frozen,
                                                                           frozen_cfg: PostgresConfig) -> None:
    t = PostgresTracker(frozen_cfg)
    try:
        assert t.get(JOB) is None
        call = in_frozen_server(freezable, lambda: t.get(JOB))
        assert isinstance(call.error, TrackerUnreachable), repr(call.error)
        msg = check_one_line(call.error, frozen_cfg)
        # the statement gave up, and so did the reconnect: each names the setting that bounds it
        assert f"within {STATEMENT_S} s ([postgres] statement_timeout)" in msg, msg
        assert "could not reconnect" in msg and "[postgres] connect_timeout" in msg, msg
        assert t.get(JOB) is None  # thawed: the next statement reconnects
    finally:
        t.close()


def test_opening_a_tracker_on_a_frozen_server_still_ends_at_connect_timeout(freezable: Frozen,
                                                                            frozen_cfg: PostgresConfig) -> None:
    """Under psycopg2's wait callback libpq no longer applies connect_timeout itself: the callback does."""
    PostgresTracker(frozen_cfg).close()  # the wait callback is in place before the freeze
    call = in_frozen_server(freezable, lambda: PostgresTracker(frozen_cfg))
    msg = check_one_line(call.error, frozen_cfg)
    assert "cannot connect" in msg and "within 3 s ([postgres] connect_timeout)" in msg, msg


def test_other_psycopg2_connections_keep_their_own_connect_timeout(freezable: Frozen,
                                                                   frozen_cfg: PostgresConfig) -> None:
    """The wait callback is process-wide: a connection that is not the tracker's waits as before (for ever for a
    statement, connect_timeout while connecting)."""
    PostgresTracker(frozen_cfg).close()
    conn = freezable.server.connect(timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 42")
            assert cur.fetchone() == (42,)
    finally:
        conn.close()
    call = in_frozen_server(freezable, lambda: freezable.server.connect(timeout=2))
    assert isinstance(call.error, psycopg2.OperationalError) and "timeout expired" in str(call.error)


def test_a_run_whose_server_freezes_fails_its_lock_check_and_exits_within_bounds(
        freezable: Frozen, frozen_cfg: PostgresConfig, caplog: pytest.LogCaptureFixture) -> None:
    """The lock check before an output commit, then the release on the way out: each bounded, the run ends with
    the one line (exit 2) and the lock is left to its lease, as when the database is down."""
    t = PostgresTracker(frozen_cfg)
    locked, checking = threading.Event(), threading.Event()

    def run() -> None:
        with JobGuard(t, "analyze", DATE, lease_seconds=60) as g:  # no heartbeat beat during the test (20 s)
            g.mark_step("load", "success")
            locked.set()
            assert checking.wait(HANG_S)
            g.assert_lock()

    try:
        with caplog.at_level(logging.ERROR, "tickflow.tracker"):
            running = InThread(run)
            assert locked.wait(HANG_S) and running.error is None
            with freezable.srv.frozen():
                checking.set()
                finished = running.finished_within(HANG_S)
            running.reap()
        assert finished, f"a run on a frozen server still waited after {HANG_S} s"
        assert isinstance(running.error, TrackerUnreachable), repr(running.error)
        check_one_line(running.error, frozen_cfg)
        assert any("could not release job analyze_2020-08-06" in r.getMessage() for r in caplog.records)
        row = t.get(JOB)
        assert row is not None and row.status == "running" and row.lock_id is not None  # expires with the lease
    finally:
        t.close()


def test_the_heartbeat_gives_up_on_a_frozen_server_and_renews_once_it_thaws(
        freezable: Frozen, frozen_cfg: PostgresConfig, caplog: pytest.LogCaptureFixture) -> None:
    t = PostgresTracker(frozen_cfg)
    try:
        with caplog.at_level(logging.WARNING, "tickflow.tracker"), \
                JobGuard(t, "analyze", DATE, lease_seconds=6) as g:  # renewed every 2 s
            hb = g._heartbeat
            assert hb is not None

            def gave_up() -> bool:
                return any("heartbeat: could not renew the lease" in r.getMessage() for r in caplog.records)

            with freezable.srv.frozen():
                wait_until(gave_up, HANG_S, "the heartbeat to give up on the frozen server")
            failure = next(r.getMessage() for r in caplog.records
                           if "heartbeat: could not renew the lease" in r.getMessage())
            assert SECRET not in failure and "statement_timeout" in failure, failure
            renewed = hb.renewals
            wait_until(lambda: hb.renewals > renewed, HANG_S, "the heartbeat to renew after the thaw")
            assert not g.lease_lost
        row = t.get(JOB)
        assert row is not None and (row.status, row.lock_id) == ("success", None)
    finally:
        t.close()


# -- a live server: waits for a lock are statements too ------------------------------------------------------
@contextlib.contextmanager
def row_locked(server: PgServer, database: str, table: str, job_id: str) -> Iterator[None]:
    """Another session holds the job's row (SELECT ... FOR UPDATE in an open transaction) until the end."""
    conn = server.connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT job_id FROM {table} WHERE job_id = %s FOR UPDATE", (job_id,))
            assert cur.fetchone() == (job_id,)
        yield
    finally:
        conn.rollback()
        conn.close()


def waiting_for_a_lock(server: PgServer, database: str) -> bool:
    conn = server.connect(database)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock' "
                        "AND application_name = 'tickflow-tracker'", (database,))
            return int(cur.fetchone()[0]) > 0
    finally:
        conn.close()


@pytest.fixture
def live_cfg(pg_server: PgServer, pg_database: str) -> PostgresConfig:
    return replace(pg_server.config(pg_database, f"jt_{uuid.uuid4().hex[:10]}"), password=SECRET)


def test_a_lock_wait_shorter_than_the_bound_still_succeeds(pg_server: PgServer, pg_database: str,
                                                           live_cfg: PostgresConfig) -> None:
    t = PostgresTracker(live_cfg)  # the default bound, 30 s
    try:
        lease = t.acquire(JOB, lease_seconds=30, holder_host="h", holder_pid=1)
        assert lease is not None
        with row_locked(pg_server, pg_database, t.table, JOB):
            renew = InThread(lambda: t.renew(lease, 60))
            wait_until(lambda: waiting_for_a_lock(pg_server, pg_database), 10, "the renew to wait for the row lock")
        assert renew.finished_within(HANG_S) and renew.error is None and renew.result is not None
        assert t.reconnects == 0
    finally:
        t.close()


def test_a_lock_wait_longer_than_the_bound_is_a_tracker_error_naming_the_setting(
        pg_server: PgServer, pg_database: str, live_cfg: PostgresConfig) -> None:
    cfg = replace(live_cfg, statement_timeout=1)
    t = PostgresTracker(cfg)
    try:
        lease = t.acquire(JOB, lease_seconds=30, holder_host="h", holder_pid=1)
        assert lease is not None
        with row_locked(pg_server, pg_database, t.table, JOB):
            renew = InThread(lambda: t.renew(lease, 60))
            assert renew.finished_within(HANG_S)
        msg = check_one_line(renew.error, cfg)  # given up once, reconnected, and given up again
        assert not isinstance(renew.error, TrackerUnreachable)
        assert "within 1 s ([postgres] statement_timeout)" in msg, msg
        assert t.renew(lease, 60) is not None  # the session reopened by the retry goes on
    finally:
        t.close()


def test_an_upgrade_waiting_for_the_table_longer_than_the_bound_names_the_setting(
        pg_server: PgServer, pg_database: str, live_cfg: PostgresConfig) -> None:
    """ALTER TABLE waits for every open transaction that read the table (an operator's psql session, say)."""
    cfg = replace(live_cfg, statement_timeout=1)
    conn = pg_server.connect(pg_database)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {cfg.job_tracker_table_name} (job_id VARCHAR PRIMARY KEY, "
                        "status VARCHAR(10), updated_time TIMESTAMP, lock_id UUID DEFAULT NULL)")
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {cfg.job_tracker_table_name}")  # holds ACCESS SHARE until rollback
        opening = InThread(lambda: PostgresTracker(cfg))
        assert opening.finished_within(HANG_S)
    finally:
        conn.rollback()
        conn.close()
    msg = check_one_line(opening.error, cfg)
    assert "within 1 s ([postgres] statement_timeout)" in msg, msg
    PostgresTracker(cfg).close()  # nothing holds the table any more: the upgrade goes through


def test_ctrl_c_during_a_statement_is_raised_once_the_statement_ended_not_halfway(
        pg_server: PgServer, pg_database: str, live_cfg: PostgresConfig) -> None:
    """As with libpq's blocking wait before: an interrupted statement is never left in doubt (applied or not)."""
    t = PostgresTracker(live_cfg)
    handled, released = threading.Event(), threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        handled.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        lease = t.acquire(JOB, lease_seconds=30, holder_host="h", holder_pid=1)
        assert lease is not None
        blocker = pg_server.connect(pg_database)
        with blocker.cursor() as cur:
            cur.execute(f"SELECT job_id FROM {t.table} WHERE job_id = %s FOR UPDATE", (JOB,))

        def interrupt_then_release() -> None:
            try:
                wait_until(lambda: waiting_for_a_lock(pg_server, pg_database), 10, "the renew to wait for the lock")
                os.kill(os.getpid(), signal.SIGINT)
                assert handled.wait(10)
            finally:
                blocker.rollback()
                blocker.close()
                released.set()

        helper = InThread(interrupt_then_release)
        with pytest.raises(KeyboardInterrupt):
            t.renew(lease, 600)
        assert handled.is_set()
        assert helper.finished_within(HANG_S) and helper.error is None and released.is_set()
        row = t.get(JOB)  # the session the interrupt closed is reopened
        assert row is not None and row.lease_expires is not None
        assert row.lease_expires > t.now() + dt.timedelta(seconds=300)  # the renew was applied
    finally:
        signal.signal(signal.SIGINT, previous)
        t.close()
