"""Run logs: one file per run, and old ones removed when a run starts."""

from __future__ import annotations

import datetime as dt
import os
import time

from engine.config import Config
from engine.logs import close_logging
from engine.run_logging import prune_logs, start_run_logging


def _aged(path, days: float) -> None:
    path.write_text("a run's log")
    then = time.time() - days * 86400
    os.utime(path, (then, then))


def test_a_run_removes_logs_older_than_log_keep_days_and_nothing_else(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    old, recent, other = logs / "analyze_2024-01-04_x.log", logs / "analyze_2024-01-05_y.log", logs / "notes.txt"
    _aged(old, 31)
    _aged(recent, 29)
    _aged(other, 400)
    config = Config(log_dir=str(logs), log_keep_days=30, base_dir=tmp_path)
    try:
        path = start_run_logging(config, "analyze", dt.date(2024, 1, 8), "run1")
    finally:
        close_logging()
    assert sorted(p.name for p in logs.iterdir()) == sorted([recent.name, other.name, path.name])
    assert "removed 1 run log(s) older than 30 days" in path.read_text()


def test_log_keep_days_0_keeps_every_log_and_a_missing_folder_is_fine(tmp_path):
    old = tmp_path / "ancient.log"
    _aged(old, 3650)
    assert prune_logs(tmp_path, 0) == 0 and old.exists()
    assert prune_logs(tmp_path / "none", 30) == 0
    assert prune_logs(tmp_path, 3649) == 1 and not old.exists()
