"""Which dates a run covers: strict date parsing, job dates from tracker rows, catch-up candidates."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from engine.dates import candidate_dates, job_dates, parse_date
from engine.storage.local import LocalStorage


def _rows(*pairs: tuple[str, str]) -> list[SimpleNamespace]:
    return [SimpleNamespace(job_id=job_id, status=status) for job_id, status in pairs]


ROWS = _rows(("preprocess_2024-01-04", "success"), ("preprocess_2024-01-05", "failed"),
             ("preprocess_2024-01-08", "stale"), ("preprocess_2024-01-09", "running"),
             ("preprocess.ingest_2024-01-10", "failed"), ("preprocessing_2024-01-11", "success"),
             ("preprocess_notadate", "success"))


def test_job_dates_filter_by_pipeline_and_status():
    assert job_dates(ROWS, "preprocess", ("success",)) == [dt.date(2024, 1, 4)]
    assert job_dates(ROWS, "preprocess") == [dt.date(2024, 1, d) for d in (4, 5, 8, 9)]


def test_upstream_catch_up_offers_every_date_the_upstream_job_has_a_row_for(tmp_path):
    # the guard then refuses those whose upstream job is not 'success' (exit 3) rather than they go unmentioned
    offered = candidate_dates({"upstream": "preprocess"}, LocalStorage(tmp_path), ROWS)
    assert offered == [dt.date(2024, 1, d) for d in (4, 5, 8, 9)]
    assert candidate_dates({}, LocalStorage(tmp_path), ROWS) is None


def test_raw_catch_up_offers_the_date_folders(tmp_path):
    for rel in ("csv/2024-01-04", "json/2024-01-05", "csv/notes"):
        (tmp_path / rel).mkdir(parents=True)
    offered = candidate_dates({"raw_folders": ["csv", "json"]}, LocalStorage(tmp_path), [])
    assert offered == [dt.date(2024, 1, 4), dt.date(2024, 1, 5)]


@pytest.mark.parametrize("text", ["20240104", "2024-W01-4", "2024-1-4", "2024-02-30"])
def test_only_yyyy_mm_dd_dates_parse(text):
    with pytest.raises(ValueError, match="expected YYYY-MM-DD"):
        parse_date(text)
