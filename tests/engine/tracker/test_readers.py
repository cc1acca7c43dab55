"""Which runs read which jobs' data: pure functions over tracker rows."""

from __future__ import annotations

import datetime as dt

from engine.tracker.base import JobRow
from engine.tracker.readers import Reads, readers_of, reads_of, running_upstream

D = dt.date(2020, 8, 6)
NOW = dt.datetime(2026, 12, 7, 12, 0, 0)


def never_gone(host: str | None, pid: int | None) -> bool:
    return False


def row(job: str, reads: Reads | None = None, *, expires: dt.datetime | None = NOW + dt.timedelta(seconds=60),
        pid: int = 7) -> JobRow:
    return JobRow(job, "running", NOW, "lock-" + job, expires, "host-a", pid, "run", "", NOW,
                  None if reads is None else reads.text())


def test_reads_round_trip_and_cover_the_dates_read() -> None:
    same = Reads(("preprocess",), D)
    looking_back = Reads(("preprocess", "vendor"), D, earlier=True)
    for reads in (same, looking_back):
        assert Reads.parse(reads.text()) == reads
    assert Reads.parse(None) is None and Reads.parse("not json") is None and Reads.parse('{"date": 1}') is None
    assert same.covers("preprocess_2020-08-06")
    assert not same.covers("preprocess_2020-08-05") and not same.covers("vendor_2020-08-06")
    assert not same.covers("preprocess.eod_2020-08-06")  # a step's row: the job's row stands for it
    assert looking_back.covers("preprocess_2020-08-05") and looking_back.covers("vendor_1999-01-01")
    assert not looking_back.covers("preprocess_2020-08-07")  # a later date is not read
    assert reads_of((), D, True) is None and reads_of(["preprocess"], D, False) == same
    assert looking_back.describe() == "the data of preprocess, vendor for 2020-08-06 and every earlier date"


def test_only_live_runs_read() -> None:
    reader = row("analyze_2020-08-06", Reads(("preprocess",), D))
    expired = row("other_2020-08-06", Reads(("preprocess",), D), expires=NOW - dt.timedelta(seconds=1))
    dead = row("third_2020-08-06", Reads(("preprocess",), D), pid=99)
    later = row("analyze_2020-08-07", Reads(("preprocess",), D + dt.timedelta(days=1), earlier=True))
    rows = [reader, expired, dead, later, row("preprocess_2020-08-05")]

    def gone(host: str | None, pid: int | None) -> bool:
        return pid == 99

    assert [r.job_id for r in readers_of(rows, "preprocess_2020-08-06", NOW, gone)] == [
        "analyze_2020-08-06", "analyze_2020-08-07"]
    assert [r.job_id for r in readers_of(rows, "preprocess_2020-08-07", NOW, gone)] == ["analyze_2020-08-07"]
    assert readers_of(rows, "preprocess_2020-08-08", NOW, gone) == []


def test_running_upstream_is_what_a_reader_would_read_half_rewritten() -> None:
    rows = [row("preprocess_2020-08-05"), row("preprocess_2020-08-07"),
            row("preprocess_2020-08-04", expires=NOW - dt.timedelta(seconds=1))]
    back = Reads(("preprocess",), D, earlier=True)
    assert [r.job_id for r in running_upstream(rows, back, NOW, never_gone)] == ["preprocess_2020-08-05"]
    assert running_upstream(rows, Reads(("preprocess",), D), NOW, never_gone) == []
