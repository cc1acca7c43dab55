"""Pick the tracker backend from config: PostgreSQL when [postgres] is configured, else embedded SQLite.

The table is named by ``job_tracker_table_name``: under [postgres] for PostgreSQL, under [tracker] (alias
``table``) for SQLite; both are validated as plain SQL identifiers.
"""

from __future__ import annotations

from pathlib import Path

from engine.config import Config
from engine.errors import TrackerError
from engine.tracker.base import InvalidTableName, Tracker, validate_table_name


def sqlite_path(config: Config) -> Path:
    """The SQLite file; a relative path is taken from the directory the config was loaded in."""
    path = Path(config.tracker.sqlite_path).expanduser()
    return path if path.is_absolute() else Path(config.base_dir) / path


def open_tracker(config: Config, *, read_only: bool = False) -> Tracker:
    """Open (and create or upgrade) the job tracker table; TrackerError on any connection problem.

    ``read_only`` is for commands that only look (``status``, ``plan``, ``run --dry-run``): they must leave no
    trace, so nothing is created or upgraded (no table, no SQLite file or folder) and writes are refused; a
    missing table reads as no jobs. An unusable PostgreSQL is still a TrackerError.
    """
    if config.postgres is not None:
        from engine.tracker.postgres_backend import PostgresTracker  # psycopg2 only when needed

        return PostgresTracker(config.postgres, read_only=read_only)
    from engine.tracker.sqlite_backend import SqliteTracker

    try:
        table = validate_table_name(config.tracker.table)  # before anything is created
    except InvalidTableName as exc:
        raise InvalidTableName(f"[tracker] job_tracker_table_name: {exc}") from None
    path = sqlite_path(config)
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrackerError(f"cannot create the folder of the job tracker SQLite file {path}: "
                               f"{exc.strerror or exc}") from None
    return SqliteTracker(path, table, read_only=read_only)
