"""Trading days: weekdays only (no holiday calendar; the generator only needs weekends skipped)."""

from __future__ import annotations

import datetime as dt


def trading_days(start: dt.date, days: int) -> list[dt.date]:
    """The first ``days`` weekdays on or after ``start``."""
    out: list[dt.date] = []
    d = start
    while len(out) < days:
        if d.weekday() < 5:
            out.append(d)
        d += dt.timedelta(days=1)
    return out
