"""A succeeded step's row message: partitions, paths and raw stamps survive the tracker's message limit."""

from __future__ import annotations

import json
import logging

from engine.step_message import (
    message_field,
    readable,
    recorded_definition,
    step_figures,
    written_message,
    written_partitions,
)
from engine.tracker.base import MESSAGE_MAX


def test_a_rows_message_says_what_was_written_where_and_what_raw_input_was_read() -> None:
    message = written_message({"a": ["trade_dt=2024-01-05"]}, {"a": 3}, {"a": "x/a"}, {"csv/2024-01-05": "2:5:ab"})
    assert written_partitions(message) == {"a": ["trade_dt=2024-01-05"]}
    assert message_field(message, "paths") == {"a": "x/a"}
    assert message_field(message, "raw") == {"csv/2024-01-05": "2:5:ab"}
    assert "raw" not in json.loads(written_message({}, {}, {}))  # no raw folder read: no key
    assert written_partitions("not json") is None and written_partitions(None) is None
    assert written_partitions('{"rows": {}}') is None and written_partitions("[1]") is None


def test_stamps_that_do_not_fit_the_row_are_left_out_and_the_partitions_kept(caplog) -> None:
    many = {f"csv/2024-01-05/EX{n:03d}": f"4:123456789:{'f' * 20}" for n in range(60)}
    with caplog.at_level(logging.WARNING, logger="tickflow.runner"):
        message = written_message({"a": ["trade_dt=2024-01-05"]}, {"a": 3}, {"a": "x/a"}, many)
    assert len(message) <= MESSAGE_MAX
    assert written_partitions(message) == {"a": ["trade_dt=2024-01-05"]} and message_field(message, "raw") is None
    assert "stamps of 60 raw folders do not fit" in caplog.text


def test_a_rows_message_reads_as_words_for_people() -> None:
    """status --steps showed the JSON a later run parses."""
    message = written_message({"trade": ["trade_dt=2024-01-05"], "quote": []}, {"trade": 1250000, "quote": 1},
                              {"trade": "trade", "quote": "quote"},
                              {"csv/2024-01-05": "12:94123456:ab:1700000000", "json/2024-01-05": "garbled"})
    assert readable(message) == ("wrote trade 1,250,000 rows, quote 1 row; read csv/2024-01-05 (12 files, "
                                 "94.1 MB), json/2024-01-05")
    assert readable(written_message({}, {}, {})) == "wrote nothing"
    for other in ("a step failed: boom", None, "[1]", '{"partitions": {}}'):  # not such a record: shown as it is
        assert readable(other) is None


def test_a_rows_message_keeps_the_digest_of_the_steps_definition() -> None:
    message = written_message({"a": []}, {"a": 0}, {"a": "x/a"}, definition="0123456789abcdef")
    assert recorded_definition(message) == "0123456789abcdef"
    assert recorded_definition(written_message({}, {}, {})) is None  # a row from before digests were kept
    assert recorded_definition("not json") is None and recorded_definition(None) is None


def test_a_steps_figures_are_kept_and_read_as_words() -> None:
    """The ingest step's counts were in the report and the log only: nothing reading the tracker saw them."""
    metrics = {"lines_read": 5050000, "valid": 5000257, "bad_by_reason": {"broken_json": 3, "bad_number": 7},
               "share": 0.25, "partitions_written": {"trade": ["trade_dt=2024-01-05"]}, "flag": True,
               "names": ["a"], "mixed": {"a": 1, "b": "x"}, "inf": float("inf"), "empty": {}}
    figures = step_figures(metrics)
    assert figures == {"lines_read": 5050000, "valid": 5000257, "bad_by_reason": {"broken_json": 3, "bad_number": 7},
                       "share": 0.25}
    message = written_message({"a": []}, {"a": 0}, {"a": "x/a"}, figures=figures)
    assert message_field(message, "figures") == figures
    assert readable(message) == ("wrote a 0 rows; lines_read 5,050,000, valid 5,000,257, "
                                 "bad_by_reason {broken_json: 3, bad_number: 7}, share 0.25")


def test_figures_that_do_not_fit_the_row_go_before_the_raw_stamps(caplog) -> None:
    stamps = {f"csv/2024-01-05/EX{n:03d}": f"4:123456789:{'f' * 20}" for n in range(30)}
    figures = {"by_symbol": {f"S{n:04d}": n for n in range(200)}}
    with caplog.at_level(logging.WARNING, logger="tickflow.runner"):
        message = written_message({"a": ["trade_dt=2024-01-05"]}, {"a": 3}, {"a": "x/a"}, stamps, figures=figures)
    assert len(message) <= MESSAGE_MAX and message_field(message, "raw") == stamps
    assert message_field(message, "figures") is None and "do not fit" not in caplog.text
