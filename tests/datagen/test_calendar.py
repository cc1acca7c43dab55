"""datagen.calendar: trading days are weekdays."""

from __future__ import annotations

import datetime as dt

import pytest

from datagen.calendar import trading_days


@pytest.mark.parametrize(("start", "days", "expected"), [
    ("2020-08-08", 2, ["2020-08-10", "2020-08-11"]),  # a Saturday start: the first day is Monday
    ("2020-08-09", 1, ["2020-08-10"]),  # a Sunday start
    ("2020-08-05", 0, []),
])
def test_trading_days_start_on_or_after_start(start, days, expected):
    assert [d.isoformat() for d in trading_days(dt.date.fromisoformat(start), days)] == expected


def test_trading_days_are_consecutive_weekdays_across_weeks_and_years():
    days = trading_days(dt.date(2020, 12, 30), 12)  # a Wednesday, over New Year
    assert len(days) == 12 and all(d.weekday() < 5 for d in days)
    assert days[0] == dt.date(2020, 12, 30) and days[-1] == dt.date(2021, 1, 14)
    gaps = {(b - a).days for a, b in zip(days, days[1:], strict=False)}
    assert gaps == {1, 3}  # next day, or Friday to Monday
