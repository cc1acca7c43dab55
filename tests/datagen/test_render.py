"""datagen.render: timestamps, number texts, the plain-Python line versus the vectorised one, raw bytes.

CSV field counts and JSON lines that parse are asserted on generated files in test_generator.py, and
render_line of a generated CSV quote in test_corrupt.py.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from datagen import render

DAY = "2020-08-05"


def test_timestamps_trim_fraction_zeros_and_fmt_ms_agrees():
    ms = np.array([0, 1, 10, 100, 120, 999, 34_200_000, 86_399_999])
    expected = ["00:00:00.0", "00:00:00.001", "00:00:00.01", "00:00:00.1", "00:00:00.12", "00:00:00.999",
                "09:30:00.0", "23:59:59.999"]
    assert render.timestamps(DAY, ms).to_pylist() == [f"{DAY} {t}" for t in expected]
    assert [render.fmt_ms(DAY, int(m)) for m in ms] == [f"{DAY} {t}" for t in expected]


def test_numbers_round_trip_floats_and_write_plain_integers():
    prices = np.random.default_rng(3).uniform(20, 400, 1000)
    texts = render.numbers(prices).to_pylist()
    assert [float(t) for t in texts] == prices.tolist()
    assert texts == [repr(v) for v in prices.tolist()]  # the shortest text that round-trips
    assert render.numbers(np.array([100, 5000], dtype=np.int64)).to_pylist() == ["100", "5000"]


def _row(rec: str) -> dict[str, str]:
    row = {"trade_dt": DAY, "file_tm": f"{DAY} 11:40:00.037", "rec_type": rec, "symbol": "SYMB",
           "event_tm": f"{DAY} 10:01:02.5", "event_seq_nb": "17", "exchange": "NASDAQ"}
    if rec == "T":
        return row | {"trade_pr": "123.45678901234", "trade_size": "300", "execution_id": "NASDAQ-20200805-SYMB-17"}
    return row | {"bid_pr": "99.87654321", "bid_size": "100", "ask_pr": "99.9123456", "ask_size": "4900"}


# (csv, Q) is checked against generated lines in test_corrupt.py
@pytest.mark.parametrize(("fmt", "rec"), [("csv", "T"), ("json", "T"), ("json", "Q")])
def test_render_line_matches_the_vectorised_lines(fmt, rec):
    row = _row(rec)
    arrays = {k: pa.array([v, v], render.LS) for k, v in row.items()}
    vectorised = render.lines(fmt, rec, arrays).to_pylist()
    assert vectorised == [render.render_line(fmt, rec, row)] * 2
    if fmt == "json":
        obj = json.loads(vectorised[0])
        assert list(obj) == [key for key, _, _ in render.JSON_ORDER[rec]]
        assert obj["event_seq_nb"] == 17 and obj["symbol"] == "SYMB"  # numbers unquoted, texts quoted


def test_render_line_quote_all_quotes_numbers_in_json():
    line = render.render_line("json", "T", _row("T"), quote_all=True)
    assert json.loads(line)["event_seq_nb"] == "17" and json.loads(line)["price"] == "123.45678901234"


def test_raw_bytes_of_a_slice_and_of_nothing():
    arr = render.with_newlines(pa.array(["a", "bb", "c"], render.LS))
    assert bytes(render.raw_bytes(arr)) == b"a\nbb\nc\n"
    assert bytes(render.raw_bytes(arr.slice(1, 2))) == b"bb\nc\n"
    assert bytes(render.raw_bytes(arr.slice(3, 0))) == b""
    assert bytes(render.raw_bytes(pa.chunked_array([arr.slice(0, 1), arr.slice(2, 1)]))) == b"a\nc\n"
