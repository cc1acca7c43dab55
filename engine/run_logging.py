"""Per-run logging: a log file per run with full detail, a quieter console, secrets masked."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

from engine.config import Config
from engine.logs import close_logging, mute_console, setup_logging


def log_dir_of(config: Config) -> Path:
    path = Path(config.log_dir)
    return path if path.is_absolute() else config.base_dir / path


def start_run_logging(config: Config, pipeline: str, date: dt.date | None, run_id: str, *, quiet: bool = False,
                      fmt: str = "text") -> Path:
    """Returns the log file of this run (the previous run's handlers are replaced)."""
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    name = f"{pipeline}_{date.isoformat() if date else 'nodate'}_{stamp}_{run_id}"
    pruned = prune_logs(log_dir_of(config), config.log_keep_days)
    path = setup_logging(log_dir_of(config), name, quiet=quiet, fmt=fmt, secrets=config.secrets())
    if pruned:
        logging.getLogger("tickflow.logs").debug("removed %d run log(s) older than %d days", pruned,
                                                 config.log_keep_days)
    return path


def prune_logs(log_dir: Path, keep_days: int) -> int:
    """Remove the run logs (``*.log``) not written to for ``keep_days`` days (0: keep all); how many.

    Every run, refused ones included (a scheduler polling an upstream job), writes a log: without this the
    folder only grows. Other files are left alone, and a file another run removes first is not an error.
    """
    if keep_days <= 0 or not log_dir.is_dir():
        return 0
    cutoff = time.time() - keep_days * 86400
    removed = 0
    for path in log_dir.glob("*.log"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def end_of_run_console() -> None:
    """The run has printed its last line: Spark and py4j go on to the log file only, while the JVM stops
    (``stop_run_logging`` once it has)."""
    mute_console("spark", "py4j")


def stop_run_logging() -> None:
    close_logging()
