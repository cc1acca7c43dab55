"""Time helpers shared by the analytics transforms: durations as microseconds and zone-free epoch arithmetic.

Event times are TIMESTAMP_NTZ (exchange wall clock). Converting them through a time zone would make results
depend on the session or machine zone, so all arithmetic is done in microseconds since the zone-less epoch.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

from engine.errors import TransformError

_UNITS_US: dict[str, int] = {
    "microsecond": 1,
    "us": 1,
    "millisecond": 1_000,
    "ms": 1_000,
    "second": 1_000_000,
    "sec": 1_000_000,
    "s": 1_000_000,
    "minute": 60_000_000,
    "min": 60_000_000,
    "m": 60_000_000,
    "hour": 3_600_000_000,
    "h": 3_600_000_000,
}
DURATION_RE = re.compile(r"^\s*(\d+)\s*([a-z]+)\s*$", re.IGNORECASE)
_EPOCH = "TIMESTAMP_NTZ'1970-01-01 00:00:00'"
_EPOCH_DAY = "DATE'1970-01-01'"


def parse_duration_us(text: str, *, what: str = "duration") -> int:
    """'30 minutes', '5 min', '90 s', '1 hour' -> microseconds (a positive integer)."""
    match = DURATION_RE.match(str(text))
    unit = match.group(2).lower() if match else ""
    if unit not in _UNITS_US and unit.endswith("s"):
        unit = unit[:-1]
    if not match or unit not in _UNITS_US:
        raise TransformError(
            f"{what} '{text}' is not a duration: expected '<integer> <unit>' with unit one of "
            "microseconds, ms, seconds, minutes, hours (e.g. '30 minutes')"
        )
    value = int(match.group(1)) * _UNITS_US[unit]
    if value <= 0:
        raise TransformError(f"{what} '{text}' must be positive")
    return value


def epoch_us(col: str | Column) -> Column:
    """Microseconds between the zone-less epoch and a TIMESTAMP_NTZ column, from its date and clock fields.

    Not ``timestamp_diff``: Spark computes it through the session time zone, so with a zone that has summer
    time a wall-clock time the switch skips (02:30 on the spring-forward day) came out an hour late."""
    c = F.col(col) if isinstance(col, str) else col
    days = F.date_diff(F.to_date(c), F.expr(_EPOCH_DAY)).cast("long")
    clock_s = (F.hour(c) * 3600 + F.minute(c) * 60).cast("long")
    second_us = (F.date_part(F.lit("SECOND"), c) * 1_000_000).cast("long")  # seconds with 6 decimals: exact
    return days * 86_400_000_000 + clock_s * 1_000_000 + second_us


def from_epoch_us(col: Column) -> Column:
    """Inverse of :func:`epoch_us`: microseconds since the zone-less epoch -> TIMESTAMP_NTZ."""
    return F.timestamp_add("MICROSECOND", col, F.expr(_EPOCH))


def require_date(ctx: Any, transform: str) -> dt.date:
    """The processing date; transforms that look back in time cannot run without one."""
    date = getattr(ctx, "date", None)
    if date is None:
        raise TransformError(f"transform '{transform}' needs a processing date (run with --date)")
    return date


def require_columns(df: Any, columns: list[str], *, transform: str, input_name: str) -> None:
    """Fail with one clear line naming the missing columns instead of a Spark analysis trace."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise TransformError(
            f"transform '{transform}': input '{input_name}' lacks column(s) {missing}; it has {df.columns}"
        )
