"""Unusable databases: one clear line naming where (host, port, database), never the password, exit 2. The errors
each backend raises itself are tested with it: test_postgres_backend, test_sqlite_backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.config import Config, TrackerConfig
from engine.tracker import open_tracker
from tests.pg import PgServer, free_port

SECRET = "s3cret-Pa55word"
DRIVER = Path(__file__).with_name("driver.py")


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


def test_sqlite_parent_folders_are_created(tmp_path: Path) -> None:
    cfg = Config(tracker=TrackerConfig(sqlite_path="a/b/tracker.sqlite"), base_dir=tmp_path)
    with open_tracker(cfg) as t:
        assert t.list_jobs() == []
    assert (tmp_path / "a" / "b" / "tracker.sqlite").is_file()
