"""Per-run logging: a log file per run with full detail, a quieter console, secrets masked."""

from __future__ import annotations

import datetime as dt
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
    return setup_logging(log_dir_of(config), name, quiet=quiet, fmt=fmt, secrets=config.secrets())


def end_of_run_console() -> None:
    """The run has printed its last line: Spark and py4j go on to the log file only, while the JVM stops
    (``stop_run_logging`` once it has)."""
    mute_console("spark", "py4j")


def stop_run_logging() -> None:
    close_logging()
