"""Unusable databases: one clear line naming where (host, port, database), never the password, exit 2."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from engine.config import Config, PostgresConfig, TrackerConfig
from engine.errors import TrackerError
from engine.tracker import open_tracker
from tests.pg import PgServer, free_port

SECRET = "s3cret-Pa55word"
DRIVER = Path(__file__).with_name("driver.py")


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


def test_cli_like_process_exits_2_with_one_line(pg_server: PgServer, tmp_path: Path,
                                                clean_env: dict[str, str]) -> None:
    port = free_port()
    ini = tmp_path / "bad.ini"
    ini.write_text(f"[postgres]\nhost = 127.0.0.1\nport = {port}\ndatabase = prod\nuser = etl\n"
                   f"password = {SECRET}\nconnect_timeout = 2\n")
    done = subprocess.run([sys.executable, str(DRIVER), "--config", str(ini), "--pipeline", "p", "--date",
                           "2020-08-06"], env=clean_env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and SECRET not in done.stderr and "Traceback" not in done.stderr
    assert f"host=127.0.0.1 port={port} database=prod" in lines[0]


def test_unusable_sqlite_file(tmp_path: Path) -> None:
    (tmp_path / "state.sqlite").mkdir()  # a folder where the file should be
    cfg = Config(tracker=TrackerConfig(sqlite_path="state.sqlite"), base_dir=tmp_path)
    with pytest.raises(TrackerError, match="state.sqlite"):
        open_tracker(cfg)


def test_sqlite_parent_folders_are_created(tmp_path: Path) -> None:
    cfg = Config(tracker=TrackerConfig(sqlite_path="a/b/tracker.sqlite"), base_dir=tmp_path)
    with open_tracker(cfg) as t:
        assert t.list_jobs() == []
    assert (tmp_path / "a" / "b" / "tracker.sqlite").is_file()
