"""The PostgreSQL job tracker (engine.tracker.postgres_backend): what only it does; the behaviour both backends share
is in test_contract and the other tracker tests, run against each. (A frozen server and lost sessions have tests of
their own: test_frozen_server, test_reconnect.)"""

from __future__ import annotations

import uuid
from dataclasses import replace

import psycopg2
import pytest

from engine.config import Config, PostgresConfig
from engine.errors import TrackerError
from engine.tracker import open_tracker
from engine.tracker.base import EXTRA_COLUMNS
from engine.tracker.postgres_backend import PostgresTracker, _connect_limit, _first_line
from tests.engine.tracker.conftest import pg_table_exists
from tests.pg import PgServer, free_port

SECRET = "s3cret-Pa55word"


def check_message(exc: TrackerError, cfg: PostgresConfig) -> str:
    msg = str(exc)
    assert "\n" not in msg and SECRET not in msg
    for part in (f"host={cfg.host}", f"port={cfg.port}", f"database={cfg.database}"):
        assert part in msg, (part, msg)
    assert exc.exit_code == 2
    return msg


def test_unreachable_server(pg_server: PgServer) -> None:
    cfg = replace(pg_server.config("tickflow"), port=free_port(), password=SECRET)
    with pytest.raises(TrackerError) as err:
        open_tracker(Config(postgres=cfg))
    assert "cannot connect" in check_message(err.value, cfg)


def test_missing_database(pg_server: PgServer) -> None:
    cfg = replace(pg_server.config("no_such_db_tickflow"), password=SECRET)
    with pytest.raises(TrackerError) as err:
        open_tracker(Config(postgres=cfg))
    assert "no_such_db_tickflow" in check_message(err.value, cfg)


def test_wrong_user(pg_server: PgServer) -> None:
    cfg = replace(pg_server.config(pg_server.maintenance_db), user="no_such_role_tickflow", password=SECRET)
    with pytest.raises(TrackerError) as err:
        open_tracker(Config(postgres=cfg))
    check_message(err.value, cfg)


def test_read_only_postgres_refuses_writes(pg_server: PgServer, fresh_pg_database: str) -> None:
    with open_tracker(Config(postgres=pg_server.config(fresh_pg_database)), read_only=True) as reader:
        assert reader.list_jobs() == [] and reader.get("ro_2024-01-04") is None
        with pytest.raises(TrackerError, match="read-only"):
            reader.set_status("ro_2024-01-04", "success")
        with pytest.raises(TrackerError, match="read-only"):
            reader.unlock("ro_2024-01-04", "ops")
        # the session is read-only too, not only guarded in Python
        conn = reader._conn  # type: ignore[attr-defined]
        with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction), conn.cursor() as cur:
            cur.execute("CREATE TABLE job_tracker (job_id VARCHAR PRIMARY KEY)")
    assert not pg_table_exists(pg_server, fresh_pg_database)


def test_a_table_without_the_newest_columns_gets_them_added_in_place(pg_server: PgServer, pg_database: str) -> None:
    """A table of the version before `reads` and `log_file`: its rows stay, the two columns are added at its end."""
    table = f"jt_{uuid.uuid4().hex[:10]}"
    older = [(name, sql_type) for name, sql_type in EXTRA_COLUMNS if name not in ("reads", "log_file")]
    conn = pg_server.connect(pg_database)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (job_id VARCHAR PRIMARY KEY, status VARCHAR(10), "
                        f"updated_time TIMESTAMP, lock_id UUID DEFAULT NULL, "
                        f"{', '.join(f'{n} {t}' for n, t in older)})")
            cur.execute(f"INSERT INTO {table} (job_id, status, updated_time, message) VALUES "
                        "('p_2024-01-04', 'success', '2024-01-04 23:00:00', 'done')")
        tracker = PostgresTracker(pg_server.config(pg_database, table))
        try:
            kept = tracker.get("p_2024-01-04")
            assert kept is not None and (kept.status, kept.message, kept.reads, kept.log_file) == (
                "success", "done", None, None)
            assert tracker.acquire("p_2024-01-05", lease_seconds=60, holder_host="h", holder_pid=1, reads="up:1",
                                   log_file="logs/p.log") is not None
            row = tracker.get("p_2024-01-05")
            assert row is not None and (row.reads, row.log_file) == ("up:1", "logs/p.log")
        finally:
            tracker.close()
        with conn.cursor() as cur:
            cur.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
                        "current_schema() AND table_name = %s ORDER BY ordinal_position", (table,))
            columns = cur.fetchall()
            cur.execute(f"DROP TABLE {table}")
    finally:
        conn.close()
    assert [name for name, _ in columns] == (["job_id", "status", "updated_time", "lock_id"]
                                             + [name for name, _ in older] + ["reads", "log_file"])
    assert columns[-2:] == [("reads", "text"), ("log_file", "text")]


def test_a_server_message_is_cut_to_its_first_line_without_the_password() -> None:
    exc = psycopg2.OperationalError('\n  FATAL:  password authentication failed for "pw-123"\nDETAIL: pw-123\n')
    assert _first_line(exc, "pw-123") == 'FATAL:  password authentication failed for "***"'
    assert _first_line(psycopg2.OperationalError(""), "") == "OperationalError"


@pytest.mark.parametrize("timeout,limit", [("3", 3.0), (2.5, 2.5), ("0", None), ("-1", None), ("", None),
                                           ("soon", None)])
def test_a_connect_timeout_of_zero_or_none_waits_for_ever(timeout, limit) -> None:
    assert _connect_limit(timeout) == limit
