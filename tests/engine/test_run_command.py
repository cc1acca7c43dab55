"""The run command's pure parts."""

from __future__ import annotations

import datetime as dt

from engine.run_command import DateOutcome, aggregate_exit


def outcomes(*codes: int) -> list[DateOutcome]:
    return [DateOutcome(dt.date(2024, 1, 4) + dt.timedelta(days=i), "x", code, 0.0) for i, code in enumerate(codes)]


def test_a_backfill_exits_with_the_code_to_act_on_first() -> None:
    """A date whose tracker or storage failed (2) is not hidden behind another date's refusal (3 or 4)."""
    assert aggregate_exit(outcomes(0, 3, 2, 4)) == 2
    assert aggregate_exit(outcomes(2, 1)) == 1
    assert aggregate_exit(outcomes(3, 4, 0)) == 4
    assert aggregate_exit(outcomes(0, 3)) == 3
    assert aggregate_exit(outcomes(0, 0)) == 0 and aggregate_exit([]) == 0
