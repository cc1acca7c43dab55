"""Pure functions of tracker.base: which upstream rows count, and when a success is out of date."""

from __future__ import annotations

import datetime as dt

from engine.tracker.base import JobRow, outdated_by, succeeded_since, upstream_rows

T0 = dt.datetime(2026, 11, 2, 10, 0, 0)


def _row(job_id: str, minutes: int, status: str = "success") -> JobRow:
    return JobRow(job_id, status, T0 + dt.timedelta(minutes=minutes), None)


ROWS = [_row("preprocess_2024-01-04", 0), _row("preprocess_2024-01-05", 1), _row("preprocess_2024-01-08", 2),
        _row("preprocess.ingest_2024-01-04", 9), _row("other_2024-01-04", 9), _row("analyze_2024-01-04", 9),
        _row("not a job id", 9)]


def test_upstream_rows_are_the_required_jobs_of_the_date_and_with_earlier_of_every_earlier_date() -> None:
    day = dt.date(2024, 1, 5)
    same = upstream_rows(ROWS, ["preprocess"], day)
    assert [r.job_id for r in same] == ["preprocess_2024-01-05"]
    earlier = upstream_rows(ROWS, ["preprocess"], day, earlier=True)
    assert [r.job_id for r in earlier] == ["preprocess_2024-01-04", "preprocess_2024-01-05"]  # not steps, not 8th


def test_an_earlier_dates_upstream_success_after_the_job_outdates_it_naming_the_earliest() -> None:
    job = _row("analyze_2024-01-08", 5)
    ups = [_row("preprocess_2024-01-05", 7), _row("preprocess_2024-01-04", 6), _row("preprocess_2024-01-08", 1)]
    why = outdated_by(job, ups)
    assert why == ("upstream job preprocess_2024-01-04 (an earlier date, which this job reads) succeeded at "
                   "2026-11-02 10:06:00 UTC (and 1 more), after analyze_2024-01-08 started at 2026-11-02 "
                   "10:05:00 UTC (it succeeded at 2026-11-02 10:05:00 UTC)")
    assert outdated_by(job, [ups[2]]) is None  # the same date's upstream succeeded before it
    assert outdated_by(job, [_row("preprocess_2024-01-08", 6)]).startswith(
        "upstream job preprocess_2024-01-08 succeeded again at 2026-11-02 10:06:00 UTC, after")
    assert outdated_by(job, [_row("preprocess_2024-01-05", 7, "failed")]) is None  # only a success replaces data
    assert outdated_by(_row("analyze_2024-01-08", 5, "failed"), ups) is None  # nothing to outdate


def test_an_upstream_success_while_the_job_ran_outdates_it() -> None:
    """A restated earlier date that succeeded after the job started (it may have read the old closes, or
    half of each) but before it ended: the job's result is no better than one computed before."""
    job = JobRow("analyze_2024-01-08", "success", T0 + dt.timedelta(minutes=8), None,
                 started_time=T0 + dt.timedelta(minutes=5))
    why = outdated_by(job, [_row("preprocess_2024-01-05", 6)])
    assert why == ("upstream job preprocess_2024-01-05 (an earlier date, which this job reads) succeeded at "
                   "2026-11-02 10:06:00 UTC, after analyze_2024-01-08 started at 2026-11-02 10:05:00 UTC (it "
                   "succeeded at 2026-11-02 10:08:00 UTC)")
    assert outdated_by(job, [_row("preprocess_2024-01-05", 4)]) is None  # done before the job started
    step = JobRow("analyze.prior_close_2024-01-08", "success", T0 + dt.timedelta(minutes=8), None,
                  started_time=T0 + dt.timedelta(minutes=5))
    assert not succeeded_since(step, [_row("preprocess_2024-01-05", 6)])
    assert succeeded_since(step, [_row("preprocess_2024-01-05", 4)])


def test_a_step_counts_as_succeeded_only_when_no_upstream_job_succeeded_after_it() -> None:
    step = _row("analyze.bars_2024-01-08", 5)
    assert succeeded_since(step, [_row("preprocess_2024-01-08", 4)])
    assert not succeeded_since(step, [_row("preprocess_2024-01-08", 4), _row("preprocess_2024-01-05", 6)])
    assert succeeded_since(step, [_row("preprocess_2024-01-05", 6, "running"), None])  # not (yet) replaced
    assert not succeeded_since(_row("analyze.bars_2024-01-08", 5, "stale"), [])
    assert not succeeded_since(None, [])
