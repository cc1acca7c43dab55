"""The run command's pure parts."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.run_command import DateOutcome, aggregate_exit, check_selection
from engine.selection import SelectionError
from engine.spec_loader import load_spec


def outcomes(*codes: int) -> list[DateOutcome]:
    return [DateOutcome(dt.date(2024, 1, 4) + dt.timedelta(days=i), "x", code, 0.0) for i, code in enumerate(codes)]


def test_a_backfill_exits_with_the_code_to_act_on_first() -> None:
    """A date whose tracker or storage failed (2) is not hidden behind another date's refusal (3 or 4)."""
    assert aggregate_exit(outcomes(0, 3, 2, 4)) == 2
    assert aggregate_exit(outcomes(2, 1)) == 1
    assert aggregate_exit(outcomes(3, 4, 0)) == 4
    assert aggregate_exit(outcomes(0, 3)) == 3
    assert aggregate_exit(outcomes(0, 0)) == 0 and aggregate_exit([]) == 0


def test_a_selection_of_steps_that_write_nothing_is_refused_before_anything_starts(write_spec) -> None:
    """`--select quotes` (a read_dataset step without outputs) started Spark, wrote nothing and recorded success."""
    spec = load_spec(write_spec("""
        pipeline: sel
        steps:
          base: {sql: "SELECT 1 AS x"}
          out: {sql: "SELECT x FROM base", outputs: {o: {path: sel/out}}}
        """), date=dt.date(2024, 1, 5))
    with pytest.raises(SelectionError) as err:
        check_selection(spec, ["base"])
    assert str(err.value) == ("--select base picks only steps that write nothing (base): a run would compute them "
                              "and keep nothing; select the steps that use them, e.g. base+")
    assert err.value.exit_code == 2
    check_selection(spec, ["base+"])
    check_selection(spec, ["out"])
