"""Read-only commands (`status`, `plan`, `run --dry-run`) never write to the job tracker.

They open it with ``open_tracker(config, read_only=True)``: no CREATE/ALTER, no SQLite file or folder; a
missing file or table reads as "no jobs recorded yet", a table of an older version reads with its missing
columns as NULL, and an unusable PostgreSQL is still one clear error line (exit 2). That each backend's read-only
open is read-only in the database too (SQLite's mode=ro, PostgreSQL's read-only session) is tested with the backend:
test_sqlite_backend, test_postgres_backend.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from engine import cli
from engine.config import Config, TrackerConfig
from engine.errors import TrackerError
from engine.tracker import open_tracker
from engine.tracker.commands import add_status_arguments, cmd_status
from tests.engine.tracker.conftest import Backend, pg_table_exists
from tests.pg import PgServer, free_port

SEED_DDL = ("CREATE TABLE {t} (job_id VARCHAR PRIMARY KEY, status VARCHAR(10), updated_time TIMESTAMP, "
            "lock_id UUID DEFAULT NULL)")
LEGACY_LOCK = "5f0c7a8e-3b9d-4c1e-9a57-0d2b6c4e8f11"
SECRET = "s3cret-Pa55word"
SPEC = """\
pipeline: ro
steps:
  a: {sql: SELECT 1 AS x, outputs: {a: {path: ro/a}}}
"""


@pytest.fixture(autouse=True)
def no_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads TICKFLOW_* overrides; a developer's shell must not point these tests elsewhere."""
    for name in list(os.environ):
        if name.startswith("TICKFLOW_"):
            monkeypatch.delenv(name)


def status(config: Config, *argv: str) -> str:
    p = argparse.ArgumentParser()
    add_status_arguments(p)
    out = io.StringIO()
    assert cmd_status(p.parse_args(list(argv)), config, out=out) == 0
    return out.getvalue()


def write_ini(tmp: Path, tracker_section: str) -> Path:
    ini = tmp / "ro.ini"
    ini.write_text(f"[storage]\nroot = {tmp}/wh\nraw_root = {tmp}/raw\n{tracker_section}")
    return ini


def sqlite_section(path: Path) -> str:
    return f"[tracker]\nsqlite_path = {path}\n"


def pg_section(server: PgServer, database: str, table: str = "job_tracker", port: int | None = None,
               password: str | None = None) -> str:
    return (f"[postgres]\nhost = {server.host}\nport = {port or server.port}\ndatabase = {database}\n"
            f"user = {server.user}\npassword = {server.password if password is None else password}\n"
            f"job_tracker_table_name = {table}\nconnect_timeout = 3\n")


def run_cli(*argv: str | Path) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main([str(a) for a in argv], out=out)
    return code, out.getvalue()


def plan_invocations(spec: Path, ini: Path) -> list[list[str | Path]]:
    """plan with a date, a backfill plan (reads list_jobs) and run --dry-run."""
    return [["plan", spec, "--date", "2024-01-04", "--config", ini],
            ["plan", spec, "--start", "2024-01-04", "--end", "2024-01-05", "--config", ini],
            [spec, "--dry-run", "--start", "2024-01-04", "--end", "2024-01-05", "--config", ini]]


def columns(backend: Backend) -> list[str]:
    if backend.kind == "sqlite":
        return [r[1] for r in backend.execute(f"PRAGMA table_info({backend.table})")]
    return [r[0] for r in backend.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = ? ORDER BY ordinal_position", (backend.table,))]


def seed_legacy_table(backend: Backend) -> None:
    """A table as an older version left it: only the four seed columns, one done job and one legacy lock."""
    backend.execute(SEED_DDL.format(t=backend.table))
    backend.execute(f"INSERT INTO {backend.table} (job_id, status, updated_time, lock_id) VALUES (?, ?, ?, ?)",
                    ("ro_2024-01-04", "success", "2024-01-04 23:00:00", None))
    backend.execute(f"INSERT INTO {backend.table} (job_id, status, updated_time, lock_id) VALUES (?, ?, ?, ?)",
                    ("ro_2024-01-05", "running", "2024-01-05 22:00:00", LEGACY_LOCK))


# -- SQLite: no file, no folder ------------------------------------------------------------------------
def test_status_on_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    config = Config(tracker=TrackerConfig(sqlite_path="state/deeper/tracker.sqlite"), base_dir=tmp_path)
    text = status(config)
    assert text == f"no jobs in SQLite {tmp_path}/state/deeper/tracker.sqlite table job_tracker\n"
    assert json.loads(status(config, "--json")) == []
    assert list(tmp_path.iterdir()) == []


def test_plan_and_dry_run_on_a_missing_sqlite_file_create_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "ro.yaml"
    spec.write_text(SPEC)
    db = tmp_path / "state" / "deeper" / "tracker.sqlite"
    ini = write_ini(tmp_path, sqlite_section(db))
    for argv in plan_invocations(spec, ini):
        code, text = run_cli(*argv)
        assert code == 0, (argv, text)
        assert "job:      ro_2024-01-04: no record" in text and "a run would compute 1 of 1 steps" in text
        assert "tracker unavailable" not in text
    assert not (tmp_path / "state").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ro.ini", "ro.yaml"]  # no warehouse either


def test_an_existing_sqlite_file_without_the_table_reads_as_empty(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "other.sqlite").execute("CREATE TABLE unrelated (x)").connection.close()
    config = Config(tracker=TrackerConfig(sqlite_path="other.sqlite"), base_dir=tmp_path)
    assert "no jobs in" in status(config)
    conn = sqlite3.connect(tmp_path / "other.sqlite")
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    finally:
        conn.close()
    assert tables == ["unrelated"]


# -- PostgreSQL: no table ------------------------------------------------------------------------------
def test_status_and_plan_on_a_fresh_postgres_database_create_no_table(
        pg_server: PgServer, fresh_pg_database: str, tmp_path: Path) -> None:
    config = Config(postgres=pg_server.config(fresh_pg_database))
    assert "no jobs in PostgreSQL" in status(config)
    assert json.loads(status(config, "--json", "--steps")) == []
    spec = tmp_path / "ro.yaml"
    spec.write_text(SPEC)
    ini = write_ini(tmp_path, pg_section(pg_server, fresh_pg_database))
    for argv in plan_invocations(spec, ini):
        code, text = run_cli(*argv)
        assert code == 0, (argv, text)
        assert "job:      ro_2024-01-04: no record" in text and "tracker unavailable" not in text
    code, _ = run_cli("status", "--config", ini)
    assert code == 0
    assert not pg_table_exists(pg_server, fresh_pg_database)


def test_unreachable_postgres_is_still_one_clear_line_exit_2(pg_server: PgServer, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    cfg = replace(pg_server.config("prod"), port=port, password=SECRET)
    with pytest.raises(TrackerError) as err:
        open_tracker(Config(postgres=cfg), read_only=True)
    assert err.value.exit_code == 2 and SECRET not in str(err.value) and "\n" not in str(err.value)
    assert f"cannot connect to the PostgreSQL job tracker at host={cfg.host} port={port} database=prod" in str(
        err.value)
    ini = write_ini(tmp_path, pg_section(pg_server, "prod", port=port, password=SECRET))
    code, _ = run_cli("status", "--config", ini)
    stderr = capsys.readouterr().err
    assert code == 2 and SECRET not in stderr and len(stderr.strip().splitlines()) == 1
    assert f"port={port} database=prod" in stderr
    spec = tmp_path / "ro.yaml"
    spec.write_text(SPEC)
    code, text = run_cli("plan", str(spec), "--date", "2024-01-04", "--config", str(ini))
    assert code == 0 and "(tracker unavailable: cannot connect to the PostgreSQL job tracker" in text
    assert "verdict:  a run would exit 2: it cannot open the job tracker (see above)" in text and SECRET not in text
    code, _ = run_cli(str(spec), "--date", "2024-01-04", "--config", str(ini))  # a run refuses, leaving nothing
    stderr = capsys.readouterr().err
    assert code == 2 and "cannot connect to the PostgreSQL job tracker" in stderr and SECRET not in stderr
    assert not (tmp_path / "wh").exists()


# -- both backends: a table of an older version is read, never altered --------------------------------
def test_an_old_schema_table_is_listed_unchanged(backend: Backend, tmp_path: Path) -> None:
    seed_legacy_table(backend)
    before = columns(backend)
    assert before == ["job_id", "status", "updated_time", "lock_id"]
    table = status(backend.config())
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["JOB_ID", "STATUS"]
    # no start time kept: STARTED and DURATION are '-'
    assert lines[1].split()[:6] == ["ro_2024-01-04", "success", "-", "-", "2024-01-04", "23:00:00"]
    assert lines[2].split()[:8] == ["ro_2024-01-05", "running", "-", "-", "2024-01-05", "22:00:00", "held", "(no"]
    rows = json.loads(status(backend.config(), "--json"))
    assert [(r["job_id"], r["status"], r["lock_id"], r["lock"]) for r in rows] == [
        ("ro_2024-01-04", "success", None, "-"), ("ro_2024-01-05", "running", LEGACY_LOCK, "held (no lease)")]
    assert rows[0]["updated_time"] == "2024-01-04T23:00:00+00:00"
    assert all(r[k] is None for r in rows for k in ("lease_expires", "holder_host", "holder_pid", "run_id",
                                                     "started_time", "message"))
    assert columns(backend) == before


def test_plan_reads_an_old_schema_table_without_altering_it(backend: Backend, tmp_path: Path) -> None:
    seed_legacy_table(backend)
    spec = tmp_path / "ro.yaml"
    spec.write_text(SPEC)
    if backend.kind == "sqlite":
        section = f"[tracker]\nsqlite_path = {backend.sqlite_file}\ntable = {backend.table}\n"
    else:
        assert backend.server is not None and backend.database is not None
        section = pg_section(backend.server, backend.database, backend.table)
    ini = write_ini(tmp_path, section)
    code, text = run_cli("plan", spec, "--date", "2024-01-04", "--config", ini)
    assert code == 0, text
    assert "job:      ro_2024-01-04: success" in text and "would do nothing: the job already succeeded" in text
    code, text = run_cli("plan", spec, "--date", "2024-01-05", "--config", ini)
    assert code == 0, text
    assert "ro_2024-01-05: running, locked by unknown host (unknown pid)" in text
    assert "would exit 4" in text  # a lock without a lease holds until unlocked
    code, text = run_cli("plan", spec, "--start", "2024-01-04", "--end", "2024-01-05", "--config", ini)
    assert code == 0, text
    assert "ro 2024-01-04: already succeeded" in text
    assert columns(backend) == ["job_id", "status", "updated_time", "lock_id"]


def test_run_and_unlock_still_upgrade_an_old_schema_table(backend: Backend) -> None:
    seed_legacy_table(backend)
    with open_tracker(backend.config()) as t:
        assert t.unlock("ro_2024-01-05", "ops") is True
    assert len(columns(backend)) == 16  # the seed columns and the twelve this version adds
