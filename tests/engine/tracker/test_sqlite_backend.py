"""The embedded SQLite job tracker (engine.tracker.sqlite_backend): what only it does; the behaviour both backends
share is in test_contract and the other tracker tests, run against each."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from engine.config import Config, TrackerConfig
from engine.errors import TrackerError
from engine.tracker import open_tracker
from engine.tracker.base import EXTRA_COLUMNS
from engine.tracker.sqlite_backend import SqliteTracker

SEED = ["job_id", "status", "updated_time", "lock_id"]


def _columns(path: Path, table: str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


def test_unusable_sqlite_file(tmp_path: Path) -> None:
    (tmp_path / "state.sqlite").mkdir()  # a folder where the file should be
    cfg = Config(tracker=TrackerConfig(sqlite_path="state.sqlite"), base_dir=tmp_path)
    with pytest.raises(TrackerError, match="state.sqlite"):
        open_tracker(cfg)


def test_read_only_sqlite_refuses_writes_and_leaves_the_file_alone(tmp_path: Path) -> None:
    config = Config(tracker=TrackerConfig(sqlite_path="t.sqlite"), base_dir=tmp_path)
    with open_tracker(config) as writer:
        writer.set_status("ro_2024-01-04", "success", "done")
    before = (tmp_path / "t.sqlite").read_bytes()
    with open_tracker(config, read_only=True) as reader:
        assert [r.job_id for r in reader.list_jobs()] == ["ro_2024-01-04"]
        with pytest.raises(TrackerError, match="read-only"):
            reader.set_status("ro_2024-01-05", "success")
        with pytest.raises(TrackerError, match="read-only"):
            reader.acquire("ro_2024-01-05", lease_seconds=60, holder_host="h", holder_pid=1)
        # the file is open read-only too (mode=ro), not only guarded in Python
        conn = reader._conn  # type: ignore[attr-defined]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("CREATE TABLE sneaky (x)")
    assert (tmp_path / "t.sqlite").read_bytes() == before
    with open_tracker(Config(tracker=TrackerConfig(sqlite_path="none.sqlite"), base_dir=tmp_path),
                      read_only=True) as empty:
        assert empty.list_jobs() == [] and empty.get("ro_2024-01-04") is None
        with pytest.raises(TrackerError, match="read-only"):
            empty.set_status("ro_2024-01-04", "success")
    assert not (tmp_path / "none.sqlite").exists()


def test_a_new_file_gets_the_table_with_every_column(tmp_path: Path) -> None:
    with SqliteTracker(tmp_path / "t.sqlite", "Jobs") as tracker:
        assert tracker.table == "jobs" and tracker.describe() == f"SQLite {tmp_path / 't.sqlite'} table jobs"
        now = tracker.now()
        assert now.tzinfo is None and abs(now - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(
            minutes=1)  # the database's clock, naive UTC
    assert _columns(tmp_path / "t.sqlite", "jobs") == SEED + [name for name, _ in EXTRA_COLUMNS]


def test_a_table_without_the_newest_columns_gets_them_added_in_place(tmp_path: Path) -> None:
    """A table of the version before `reads` and `log_file`: its rows stay, the two columns are added at its end."""
    path = tmp_path / "t.sqlite"
    older = [(name, sql_type) for name, sql_type in EXTRA_COLUMNS if name not in ("reads", "log_file")]
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE job_tracker (job_id VARCHAR PRIMARY KEY, status VARCHAR(10), updated_time TIMESTAMP, "
                 f"lock_id UUID DEFAULT NULL, {', '.join(f'{n} {t}' for n, t in older)})")
    conn.execute("INSERT INTO job_tracker (job_id, status, updated_time, message) VALUES "
                 "('p_2024-01-04', 'success', '2024-01-04 23:00:00.000', 'done')")
    conn.commit()
    conn.close()
    with SqliteTracker(path) as tracker:
        kept = tracker.get("p_2024-01-04")
        assert kept is not None and (kept.status, kept.message, kept.reads, kept.log_file) == (
            "success", "done", None, None)
        assert kept.updated_time == dt.datetime(2024, 1, 4, 23, 0)
        lease = tracker.acquire("p_2024-01-05", lease_seconds=60, holder_host="h", holder_pid=1, reads="up:1",
                                log_file="logs/p.log")
        assert lease is not None
        row = tracker.get("p_2024-01-05")
        assert row is not None and (row.reads, row.log_file) == ("up:1", "logs/p.log")
    assert _columns(path, "job_tracker") == SEED + [name for name, _ in older] + ["reads", "log_file"]
