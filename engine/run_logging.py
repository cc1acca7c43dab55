"""Per-run logging: a log file per run with full detail, a quieter console, secrets masked."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path

from engine.config import Config

_STATE: dict[str, list[logging.Handler]] = {"handlers": []}


def log_dir_of(config: Config) -> Path:
    path = Path(config.log_dir)
    return path if path.is_absolute() else config.base_dir / path


def start_run_logging(config: Config, pipeline: str, date: dt.date | None, run_id: str, *, quiet: bool = False,
                      fmt: str = "text") -> Path | None:
    """Returns the log file of this run."""
    stop_run_logging()
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    name = f"{pipeline}_{date.isoformat() if date else 'nodate'}_{stamp}_{run_id}"
    root = logging.getLogger()
    before = set(root.handlers) | set(logging.getLogger("tickflow").handlers)
    try:
        from engine.logs import setup_logging
    except ImportError:
        setup_logging = None
    secrets = config.secrets()
    if setup_logging is not None:
        path = setup_logging(log_dir_of(config), name, quiet=quiet, fmt=fmt, secrets=secrets)
    else:
        path = log_dir_of(config) / f"{name}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(path)
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.WARNING if quiet else logging.INFO)
        console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        tick = logging.getLogger("tickflow")
        tick.setLevel(logging.DEBUG)
        tick.addHandler(file_handler)
        tick.addHandler(console)
        tick.propagate = False
    after = set(root.handlers) | set(logging.getLogger("tickflow").handlers)
    _STATE["handlers"] = list(after - before)
    return Path(path) if path else None


def stop_run_logging() -> None:
    for handler in _STATE["handlers"]:
        for logger in (logging.getLogger(), logging.getLogger("tickflow")):
            if handler in logger.handlers:
                logger.removeHandler(handler)
        handler.close()
    _STATE["handlers"] = []
