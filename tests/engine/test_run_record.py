"""What a run record holds and serialises to (engine.run_record): the facts the tracker, the report and the
console summary share."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from engine.run_record import STEP_STATUSES, ExpectationResult, RunRecord, StepRecord

START = dt.datetime(2024, 1, 5, 18, 0, 0)


def _record() -> RunRecord:
    steps = [StepRecord("ingest", "ingest_raw", status="success", started=START,
                        ended=START + dt.timedelta(seconds=4), duration_s=4.0, rows_in={"lines": None},
                        rows_out={"trade": 10}, outputs={"trade": "trade"}, metrics={"bad": {"price": 2}},
                        expectations=[ExpectationResult("positive", "drop", "trade_pr > 0", 10, 2, True)]),
             StepRecord("summary", "sql", depends_on=["ingest"], status="failed", error="boom"),
             StepRecord("report", "sql", depends_on=["ingest", "summary"], status="skipped",
                        skip_reason="upstream failed")]
    return RunRecord(run_id="r-1", pipeline="preprocess", date="2024-01-05", spec_file="p.yaml",
                     storage_root="./wh", status="failed", started=START, ended=START + dt.timedelta(seconds=90),
                     steps=steps, message="1 step failed: summary")


def test_a_step_starts_pending_and_a_run_running():
    assert StepRecord("s", "sql").status == "pending" == STEP_STATUSES[0]
    record = RunRecord(run_id="r", pipeline="p", date=None, spec_file="p.yaml", storage_root="wh")
    assert record.status == "running" and record.steps == [] and record.duration_s is None


def test_edges_duration_and_steps_by_name():
    record = _record()
    assert record.edges == [("ingest", "summary"), ("ingest", "report"), ("summary", "report")]
    assert record.duration_s == 90.0
    assert record.step("summary").error == "boom"
    with pytest.raises(KeyError):
        record.step("nope")
    record.ended = None  # still running
    assert record.duration_s is None


def test_to_json_is_plain_json_with_times_carrying_their_utc_offset():
    data = _record().to_json()
    assert json.loads(json.dumps(data)) == data  # nothing but JSON types
    assert data["started"] == START.astimezone().isoformat() and dt.datetime.fromisoformat(
        data["started"]).tzinfo is not None
    assert data["date"] == "2024-01-05" and data["duration_s"] == 90.0
    assert data["edges"] == [["ingest", "summary"], ["ingest", "report"], ["summary", "report"]]
    ingest = data["steps"][0]
    assert ingest["ended"] == (START + dt.timedelta(seconds=4)).astimezone().isoformat()
    assert ingest["rows_in"] == {"lines": None} and ingest["metrics"] == {"bad": {"price": 2}}
    assert ingest["expectations"] == [{"name": "positive", "action": "drop", "expression": "trade_pr > 0",
                                       "passed": 10, "failed": 2, "ok": True, "detail": ""}]
    assert data["steps"][2]["skip_reason"] == "upstream failed" and data["steps"][1]["started"] is None
    assert {"log_file", "report_html", "report_json", "message"} <= set(data)


def test_to_json_writes_a_date_value_as_iso_text():
    record = RunRecord(run_id="r", pipeline="p", date=None, spec_file="p.yaml", storage_root="wh")
    record.steps.append(StepRecord("s", "sql", metrics={"day": dt.date(2024, 1, 5), "days": (dt.date(2024, 1, 4),)}))
    assert record.to_json()["steps"][0]["metrics"] == {"day": "2024-01-05", "days": ["2024-01-04"]}
