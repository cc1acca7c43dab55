"""A PostgreSQL blip shorter than the lease does not end a run; one that lasts fails it with one clear line.

Real servers only: sessions are closed by the server (``pg_terminate_backend``), or a throwaway server is
stopped and started again with pg_ctl (as the ``postgres`` OS user when we run as root).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from engine.config import Config, StorageConfig
from engine.tracker import JobGuard, open_tracker
from engine.tracker.base import TrackerUnreachable
from tests.engine.tracker.conftest import Backend
from tests.engine.tracker.test_contract import wait_until
from tests.pg import PgServer, ThrowawayServer, create_database, start_or_skip

DATE = dt.date(2020, 8, 6)
JOB = "analyze_2020-08-06"
KILL_TRACKER_SESSIONS = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s "
                         "AND application_name = 'tickflow-tracker' AND pid <> pg_backend_pid()")


def close_tracker_sessions(server: PgServer, database: str) -> int:
    """What a failover or a restart does to our sessions: the server closes them (a real disconnect)."""
    conn = server.connect(database)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(KILL_TRACKER_SESSIONS, (database,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def pg(pg_server: PgServer, pg_database: str, tmp_path: Path) -> Iterator[Backend]:
    b = Backend("postgres", tmp_path, pg_server, pg_database)
    try:
        yield b
    finally:
        b.close()


def test_a_main_connection_closed_by_the_server_is_reopened_and_the_run_goes_on(pg: Backend) -> None:
    t = pg.tracker()
    with JobGuard(t, "analyze", DATE, lease_seconds=30) as g:
        g.mark_step("load", "success")
        assert close_tracker_sessions(pg.server, pg.database) >= 1  # type: ignore[arg-type]
        assert g.step_succeeded("load")  # was: TrackerError "server closed the connection unexpectedly"
        assert close_tracker_sessions(pg.server, pg.database) >= 1  # type: ignore[arg-type]
        assert g.invalidate_steps(["load"], "upstream recomputed") == ["load"]
        assert close_tracker_sessions(pg.server, pg.database) >= 1  # type: ignore[arg-type]
        g.mark_step("load", "success")
        assert close_tracker_sessions(pg.server, pg.database) >= 1  # type: ignore[arg-type]
    row = t.get(JOB)  # the release on the way out reconnected as well
    assert row is not None and (row.status, row.lock_id) == ("success", None)
    assert getattr(t, "reconnects", 0) >= 4


def test_a_reconnected_write_is_still_fenced_by_our_lock(pg: Backend) -> None:
    t = pg.tracker()
    from engine.tracker import LeaseLost

    with pytest.raises(LeaseLost), JobGuard(t, "analyze", DATE, lease_seconds=30) as g:
        assert t.unlock(JOB, "unlocked by ops@box")
        close_tracker_sessions(pg.server, pg.database)  # type: ignore[arg-type]
        g.mark_step("load", "running")
    assert t.get("analyze.load_2020-08-06") is None
    row = t.get(JOB)
    assert row is not None and (row.status, row.lock_id, row.message) == ("failed", None, "unlocked by ops@box")


# -- a throwaway server, stopped and started again ---------------------------------------------------------
class RestartableServer(ThrowawayServer):
    """pg_ctl stop / start on the same data folder and port: a real outage, then the same server back."""

    def pause(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-o", opts, "-w", "start")


def test_tracker_sockets_notice_a_silently_dropped_link(pg: Backend) -> None:
    """A lost host sends no FIN: without keepalives and a TCP user timeout a statement (and the heartbeat)
    would block for many minutes. Read back from the sockets themselves, the first one and a reopened one."""
    import socket

    t = pg.tracker()
    try:
        for _ in range(2):
            sock = socket.socket(fileno=os.dup(t._conn.fileno()))
            try:
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 30_000
            finally:
                sock.close()
            assert close_tracker_sessions(pg.server, pg.database) >= 1  # ours, and any an earlier test left
            t.get(JOB)  # reopens the session the server closed
        assert t.reconnects == 2
    finally:
        t.close()


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[tuple[RestartableServer, Config]]:
    srv = RestartableServer()
    server = start_or_skip(srv)
    try:
        yield srv, Config(postgres=server.config(create_database(server)))
    finally:
        with contextlib.suppress(RuntimeError):  # stop() needs it running; a failed test may have left it stopped
            srv.resume()
        srv.stop()


def test_a_server_restart_shorter_than_the_lease_does_not_end_the_run(
        restartable: tuple[RestartableServer, Config]) -> None:
    srv, config = restartable
    t = open_tracker(config)
    try:
        with JobGuard(t, "analyze", DATE, lease_seconds=6) as g:
            g.mark_step("load", "running")
            assert g._heartbeat is not None
            srv.pause()
            time.sleep(2.5)  # the heartbeat (every 2 s) fails to renew at least once
            srv.resume()
            renewed = g._heartbeat.renewals
            wait_until(lambda: g._heartbeat is not None and g._heartbeat.renewals > renewed, 10,
                       "the heartbeat to renew after the restart")
            g.mark_step("load", "success")  # was: "connection already closed", exit 2, the lock left behind
            assert g.step_succeeded("load")
        row = t.get(JOB)
        assert row is not None and (row.status, row.lock_id) == ("success", None)
    finally:
        t.close()


def test_a_database_that_stays_down_fails_the_run_with_one_line_and_the_exit_still_releases(
        restartable: tuple[RestartableServer, Config], caplog: pytest.LogCaptureFixture) -> None:
    srv, config = restartable
    assert config.postgres is not None
    t = open_tracker(config)
    try:
        with pytest.raises(TrackerUnreachable) as err, JobGuard(t, "analyze", DATE, lease_seconds=30) as g:
            g.mark_step("load", "running")
            srv.pause()
            try:
                g.mark_step("load", "success")
            finally:
                srv.resume()  # back before the guard exits: its release reconnects and records the failure
        msg = str(err.value)
        assert "\n" not in msg and "could not reconnect" in msg and err.value.exit_code == 2
        for part in (f"host={config.postgres.host}", f"port={config.postgres.port}",
                     f"database={config.postgres.database}"):
            assert part in msg
        row = t.get(JOB)
        assert row is not None and (row.status, row.lock_id) == ("failed", None)
        assert row.message is not None and row.message.startswith("TrackerUnreachable: lost the connection")
    finally:
        t.close()


def test_a_database_still_down_at_the_exit_leaves_the_lock_to_its_lease(
        restartable: tuple[RestartableServer, Config], caplog: pytest.LogCaptureFixture) -> None:
    srv, config = restartable
    t = open_tracker(config)
    try:
        with (caplog.at_level(logging.ERROR, "tickflow.tracker"), pytest.raises(TrackerUnreachable),
              JobGuard(t, "analyze", DATE, lease_seconds=30) as g):
            g.mark_step("load", "running")
            srv.pause()
            g.mark_step("load", "success")
        assert any("could not release job analyze_2020-08-06" in r.getMessage() for r in caplog.records)
        srv.resume()
        row = t.get(JOB)  # the lock expires with its lease (the heartbeat stopped), as after a crash
        assert row is not None and row.status == "running" and row.lock_id is not None
    finally:
        t.close()


# -- a whole run on real Spark -------------------------------------------------------------------------------
KILLER_MODULE = '''
import psycopg2

from engine.registry import transform


@transform("t_close_tracker_sessions", description="Passes `df` through after the server closed every tracker "
           "session of database `database`.", inputs=["df"],
           params_schema={"type": "object", "required": ["host", "port", "database"],
                          "properties": {"host": {"type": "string"}, "port": {"type": "integer"},
                                         "database": {"type": "string"}}})
def t_close_tracker_sessions(ctx, inputs, params):
    conn = psycopg2.connect(host=params["host"], port=params["port"], dbname=params["database"], user="postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(KILL, (params["database"],))
    finally:
        conn.close()
    return inputs["df"]
'''.replace("KILL", repr(KILL_TRACKER_SESSIONS))


def test_a_run_survives_the_server_closing_the_tracker_sessions_mid_step(
        pg: Backend, tmp_path: Path, write_spec, install_module, test_transforms_module, spark) -> None:
    from engine.registry import REGISTRY
    from engine.runner import PipelineRunner
    from engine.spec_loader import load_spec
    from engine.storage.local import LocalStorage

    assert pg.server is not None and pg.database is not None
    killer = install_module("tf_close_tracker_sessions", KILLER_MODULE)
    spec_path = write_spec(f"""
        pipeline: blip
        modules: [{test_transforms_module}, {killer}]
        steps:
          nums:
            transform: t_numbers
            params: {{n: 5}}
          out:
            transform: t_close_tracker_sessions
            inputs: {{df: nums}}
            params: {{host: "{pg.server.host}", port: {pg.server.port}, database: "{pg.database}"}}
            outputs: {{out: {{path: blip/out, partition_by: [day]}}}}
        """)
    config = Config(postgres=pg.config().postgres, storage=StorageConfig(root=str(tmp_path / "wh")),
                    base_dir=tmp_path)
    storage = LocalStorage(tmp_path / "wh")
    spec = load_spec(spec_path, date=DATE, config=config)
    t = pg.tracker()
    guard = JobGuard(t, spec.name, DATE, lease_seconds=30, log=logging.getLogger("tickflow.test"))
    record = PipelineRunner(spec, config, date=DATE, storage=storage, raw_storage=storage, registry=REGISTRY,
                            spark_provider=lambda: spark, guard=guard).run()
    assert record.status == "success" and record.step("out").rows_out == {"out": 5}
    rows = {r.job_id: (r.status, r.lock_id) for r in t.list_jobs()}
    assert rows["blip.out_2020-08-06"] == rows["blip_2020-08-06"] == ("success", None)


def test_psycopg2_marks_a_session_the_server_closed(pg_server: PgServer, pg_database: str) -> None:
    """What the reconnect relies on to tell a lost session from a statement error on a live one."""
    conn = pg_server.connect(pg_database)
    try:
        conn.autocommit = True
        conn.set_session(readonly=False)
        with conn.cursor() as cur:
            cur.execute("SET application_name = 'tickflow-tracker'")
        close_tracker_sessions(pg_server, pg_database)
        with pytest.raises(psycopg2.OperationalError), conn.cursor() as cur:
            cur.execute("SELECT 1")
        assert conn.closed
    finally:
        conn.close()
