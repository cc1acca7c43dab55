"""Which processing dates a run covers: one date, a backfill range, or catch-up from the inputs."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from engine.errors import ConfigError
from engine.storage.base import Storage

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Processing dates a run accepts: the previous trading day of 0001-01-01 does not exist (OverflowError), and a
# year before 1900 is a typo, not market data.
FIRST_DATE = dt.date(1900, 1, 1)


def parse_date(text: str) -> dt.date:
    """A YYYY-MM-DD date from FIRST_DATE on; other forms ``date.fromisoformat`` takes (20240104, 2024-W01-4)
    are refused."""
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError(text)
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a date; expected YYYY-MM-DD") from None
    if day < FIRST_DATE:
        raise ValueError(f"'{text}' is out of range; expected a date from {FIRST_DATE} to {dt.date.max}")
    return day


def is_trading_day(day: dt.date, holidays: Collection[dt.date] = ()) -> bool:
    """Monday to Friday and not one of the configured exchange ``holidays``."""
    return day.weekday() < 5 and day not in holidays


def trading_days(start: dt.date, end: dt.date, holidays: Collection[dt.date] = ()) -> list[dt.date]:
    """The trading days from ``start`` to ``end``, both included."""
    days = (end - start).days
    return [d for d in (start + dt.timedelta(n) for n in range(days + 1)) if is_trading_day(d, holidays)]


def previous_trading_day(day: dt.date, holidays: Collection[dt.date] = ()) -> dt.date:
    """The trading day before ``day`` (weekends and ``holidays`` skipped)."""
    day -= dt.timedelta(days=1)
    while not is_trading_day(day, holidays):
        day -= dt.timedelta(days=1)
    return day


def raw_dates(raw_storage: Storage, folders: Iterable[str]) -> list[dt.date]:
    """Dates that have a folder ``<folder>/<YYYY-MM-DD>`` under the raw root."""
    found: set[dt.date] = set()
    for folder in folders:
        for name in raw_storage.list_dirs(folder):
            try:
                found.add(dt.date.fromisoformat(name))
            except ValueError:
                continue
    return sorted(found)


def _folder_list(folders: Iterable[str], last: str) -> str:
    """``csv/``, ``csv/ or json/``, ``csv/, json/ or xml/`` (``last`` is "or" or "and")."""
    names = [f"{f.strip('/')}/" for f in folders]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"


def check_raw_folders(pipeline: str, raw_storage: Storage, folders: Iterable[str]) -> None:
    """ConfigError (exit 2) when none of a catch-up's raw folders is under the raw root.

    A mistyped or missing ``[storage] raw_root`` would otherwise offer no date, and a catch-up would end
    "nothing to do" with exit 0 night after night. Only the storage interface is used (``list_dirs``, then
    ``exists``), so local and Azure raw roots behave alike; the root is named by ``describe()``, never with
    credentials.
    """
    folders = list(folders)
    if any(raw_storage.list_dirs(f) or raw_storage.exists(f) for f in folders):
        return
    raise ConfigError(f"{pipeline}: no raw folder {_folder_list(folders, 'or')} under the raw root "
                      f"({raw_storage.describe()}); check [storage] raw_root (or TICKFLOW_STORAGE_RAW_ROOT)")


def no_new_raw_dates(raw_storage: Storage, folders: Iterable[str]) -> str:
    """Why a raw catch-up has nothing to do, naming where it looked."""
    return f"no new input dates in {_folder_list(folders, 'and')} under {raw_storage.describe()}"


def no_upstream_dates(upstream: str, start: dt.date | None = None, end: dt.date | None = None, *,
                      tracker: str = "") -> str:
    """Why an upstream catch-up has nothing to do: the tracker holds no job of that pipeline (in the range), so
    it never ran here, or runs under another name, or ran with another tracker (``tracker`` says which one this
    run reads)."""
    span = f" from {start} to {end}" if start and end else ""
    where = f" ({tracker})" if tracker else ""
    return f"no job of upstream pipeline '{upstream}'{span} is recorded in the job tracker{where}"


def job_dates(rows: Iterable[Any], pipeline: str, statuses: Iterable[str] | None = None) -> list[dt.date]:
    """Dates that have a ``<pipeline>_<date>`` job row (with one of ``statuses``, when given)."""
    prefix = pipeline + "_"
    wanted = None if statuses is None else set(statuses)
    out: set[dt.date] = set()
    for row in rows:
        job_id = row.job_id
        if job_id.startswith(prefix) and (wanted is None or row.status in wanted):
            try:
                out.add(dt.date.fromisoformat(job_id[len(prefix):]))
            except ValueError:
                continue
    return sorted(out)


def candidate_dates(catch_up: Mapping[str, Any], raw_storage: Storage, tracker_rows: list[Any]) -> list[dt.date] | None:
    """Dates the inputs offer, or None when the spec declares no catch-up source.

    An upstream pipeline offers every date it has a job row for, whatever its status: a date whose upstream
    run failed (or is still running, or stale) is then refused by the job guard with exit 3 and shows in the
    run's table, instead of being left out without a word.
    """
    if catch_up.get("raw_folders"):
        return raw_dates(raw_storage, catch_up["raw_folders"])
    if catch_up.get("upstream"):
        return job_dates(tracker_rows, catch_up["upstream"])
    return None
