"""Property-based: arbitrary and mutated lines are each valid or quarantined with one reason, as the reference says.

Each hypothesis example is a batch of lines classified in one Spark job, so few examples cover many lines.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.transforms import preprocess_reference as ref
from transforms.raw_formats import FORMATS, csv_fields, json_fields
from transforms.validation import REASON_CODES, TYPED_COLUMNS, classify

DAY = dt.date(2020, 8, 5)
CSV_T = "2020-08-05,2020-08-05 09:30:00.0,T,SYMA,2020-08-05 10:37:21.581,10,NYSE,79.19488165597565,900"
CSV_Q = ("2020-08-05,2020-08-05 09:30:00.0,Q,SYMA,2020-08-05 09:34:51.505,1,NYSE,75.30254839137037,100,"
         "75.35916738004924,200")
JSON_T = ('{"trade_dt":"2020-08-05","file_tm":"2020-08-05 09:30:00.000","event_type":"T","symbol":"SYMA",'
          '"execution_id":"EX-10","event_tm":"2020-08-05 10:38:50.046","event_seq_nb":10,"exchange":"NASDAQ",'
          '"price":77.77570455205036,"size":500}')
JSON_Q = ('{"trade_dt":"2020-08-05","file_tm":"2020-08-05 09:30:00.000","event_type":"Q","symbol":"SYMA",'
          '"event_tm":"2020-08-05 09:36:55.284","event_seq_nb":1,"exchange":"NASDAQ","bid_pr":76.10016521142818,'
          '"bid_size":100,"ask_pr":77.9647975908747,"ask_size":100}')
SEEDS = {"csv": [CSV_T, CSV_Q], "json": [JSON_T, JSON_Q]}
ALPHABET = st.sampled_from(list('0123456789-:., "{}[]TQXe+abnul') + ["\t", "\\", "é"])


@st.composite
def mutated(draw, fmt: str) -> str:
    """A valid line with a few edits: replace, insert or delete characters, swap CSV fields or reorder JSON keys
    (records in another key order than the exchange's are read by key, not by position)."""
    line = draw(st.sampled_from(SEEDS[fmt]))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "fields", "keys"]))
        i = draw(st.integers(0, max(len(line) - 1, 0)))
        if op == "replace" and line:
            line = line[:i] + draw(ALPHABET) + line[i + 1:]
        elif op == "insert":
            line = line[:i] + draw(ALPHABET) + line[i:]
        elif op == "delete" and line:
            line = line[:i] + line[i + 1:]
        elif op == "fields" and fmt == "csv":
            parts = line.split(",")
            a, b = draw(st.integers(0, len(parts) - 1)), draw(st.integers(0, len(parts) - 1))
            parts[a], parts[b] = parts[b], parts[a]
            line = ",".join(parts)
        elif op == "keys" and fmt == "json":
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                keys = draw(st.permutations(list(record)))
                line = json.dumps({k: record[k] for k in keys}, separators=(",", ":"))
    return line


def _lines(fmt: str):
    arbitrary = st.text(ALPHABET, max_size=40)
    return st.lists(st.one_of(mutated(fmt), arbitrary, st.sampled_from(SEEDS[fmt])), min_size=1, max_size=60)


def _run(spark, batches: dict[str, list[str]]) -> dict[str, list[tuple[str | None, str | None]]]:
    """Classify every format's lines in one Spark job."""
    frames = []
    for fmt, lines in batches.items():
        df = spark.createDataFrame([(fmt, i, s) for i, s in enumerate(lines)], "fmt string, i int, value string")
        frames.append(classify(FORMATS[fmt](df), DAY).select("fmt", "i", "reason", "detail"))
    rows = frames[0].unionByName(frames[1]).collect()
    out: dict[str, list[tuple[str | None, str | None]]] = {}
    for fmt, lines in batches.items():
        mine = sorted((r for r in rows if r["fmt"] == fmt), key=lambda r: r["i"])
        assert [r["i"] for r in mine] == list(range(len(lines)))  # nothing dropped, nothing duplicated
        out[fmt] = [(r["reason"], r["detail"]) for r in mine]
    return out


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(csv_lines=_lines("csv"), json_lines=_lines("json"))
def test_every_line_valid_or_one_reason_as_reference(spark, csv_lines, json_lines):
    batches = {"csv": csv_lines, "json": json_lines}
    result = _run(spark, batches)
    for fmt, lines in batches.items():
        got = result[fmt]
        for line, (reason, detail) in zip(lines, got, strict=True):
            assert reason is None or reason in REASON_CODES
            assert (reason is None) == (detail is None)
            assert reason == ref.classify(fmt, line, DAY)[0], (fmt, line, detail)


def test_json_key_order_does_not_change_the_verdict_or_values(spark):
    """Exchange key order is read by position, any other order by key: both give the same typed record."""
    swapped_type = JSON_Q.replace('"event_type":"Q"', '"event_type":"T"')  # quote keys, trade type
    reordered = json.dumps(dict(reversed(list(json.loads(JSON_Q).items()))), separators=(",", ":"))
    lines = [JSON_Q, reordered, swapped_type, JSON_T]
    df = spark.createDataFrame([(i, s) for i, s in enumerate(lines)], "i int, value string")
    rows = sorted(classify(FORMATS["json"](df), DAY).collect(), key=lambda r: r["i"])
    assert [r["reason"] for r in rows] == [None, None, "wrong_field_count", None]
    cols = ["symbol", "event_tm", "event_seq_nb", "bid_pr", "bid_size", "ask_pr", "ask_size", "trade_pr"]
    assert [rows[0][c] for c in cols] == [rows[1][c] for c in cols]
    assert rows[0]["bid_pr"] == 76.10016521142818 and rows[0]["trade_pr"] is None
    assert rows[3]["trade_pr"] == 77.77570455205036 and rows[3]["execution_id"] == "EX-10"


def test_exchange_key_order_lists_exactly_each_record_types_keys():
    """The position fast path may only know the keys the record type has: the same set, each once."""
    from transforms.raw_formats import JSON_KEY_ORDER, JSON_KEYS

    assert set(JSON_KEY_ORDER) == set(JSON_KEYS)
    for rec_type, order in JSON_KEY_ORDER.items():
        assert tuple(sorted(order)) == JSON_KEYS[rec_type]


# Lines the fast path must take (canonical), or must leave to the general path, with the same verdict either way.
EDGE_LINES = {
    "csv": [CSV_T, CSV_Q, CSV_T + "\u0085", CSV_T + "\r", CSV_Q.replace("75.30254839137037", "1e400"),
            CSV_Q.replace("75.30254839137037", "+.5E-3"), CSV_T.replace(",900", ",+0900"), CSV_T.replace("T,", "X,", 1),
            CSV_T.replace("10:37:21.581", "10:37:21.5812"), CSV_T + ",", CSV_T.replace("SYMA", ""),
            CSV_T.replace("SYMA", "SY\ufffdA"), CSV_Q.replace("SYMA", "SYMé")],
    "json": [JSON_T, JSON_Q, JSON_T + "\u2028", JSON_T + " ", JSON_T + "\u0085", JSON_T + "\r",
             JSON_Q.replace("76.10016521142818", "1E400"), JSON_Q.replace("76.10016521142818", "1.50"),
             JSON_Q.replace("76.10016521142818", "1e-400"), JSON_Q.replace("76.10016521142818", "7610016521142818e-14"),
             JSON_T.replace('"size":500', '"size":01'), JSON_T.replace('"size":500', '"size":-0'),
             JSON_T.replace('"size":500', '"size":5e2'), JSON_T.replace('"size":500', '"size":"500"'),
             JSON_T.replace('"size":500', '"size":123456789012345678901234567890'),
             JSON_Q.replace('"bid_pr":76.10016521142818', '"bid_pr":80'), JSON_T.replace("SYMA", "SY\\u0041"),
             JSON_T.replace("SYMA", "SYMé"), JSON_T.replace("SYMA", ""), JSON_T.replace('"SYMA"', "null"),
             JSON_T.replace(',"size"', ', "size"'), JSON_T.replace('"2020-08-05"', '"2020-8-05"', 1),
             # values of a JSON type no field holds; a string that only looks like one is text
             JSON_T.replace('"SYMA"', '{"id":"SYMA"}'), JSON_T.replace('"EX-10"', "true"),
             JSON_Q.replace('"bid_size":100', '"bid_size":[100]'), JSON_T.replace('"SYMA"', '{"a":1,"a":2}'),
             JSON_T.replace('"SYMA"', '"{\\"id\\":1}"'), JSON_T.replace('"NASDAQ"', '"[NASDAQ]"'),
             JSON_T.replace('"EX-10"', "null"), JSON_T.replace("SYMA", "SY\ufffdA"),
             # tokens Jackson takes only when let: not JSON, so broken_json (NON_JSON below)
             *(NON_JSON := [JSON_T.replace('"SYMA"', "NaN"), JSON_T.replace('"EX-10"', "Infinity"),
                            JSON_T.replace('"size":500', '"size":-Infinity'),
                            JSON_Q.replace("76.10016521142818", "NaN"), JSON_T.replace('"SYMA"', "'SYMA'")])],
}
COMPARED = ("reason", *TYPED_COLUMNS)


def _both_paths(spark, fmt: str, lines: list[str]) -> tuple[list, list]:
    df = spark.createDataFrame([(i, s) for i, s in enumerate(lines)], "i int, value string")
    fn = {"csv": csv_fields, "json": json_fields}[fmt]
    out = []
    for fast in (True, False):
        rows = sorted(classify(fn(df, fast=fast), DAY).select("i", "shape_ok", *COMPARED).collect(),
                      key=lambda r: r["i"])
        out.append(rows)
    return out[0], out[1]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_fast_path_takes_canonical_lines_and_agrees_with_the_general_path(spark, fmt):
    fast, general = _both_paths(spark, fmt, EDGE_LINES[fmt])
    assert fast[0]["shape_ok"] and fast[1]["shape_ok"]  # the exchanges' own lines take the fast path
    assert not any(r["shape_ok"] for r in general)
    for line, f, g in zip(EDGE_LINES[fmt], fast, general, strict=True):
        assert [f[c] for c in COMPARED] == [g[c] for c in COMPARED], (line, f, g)
        assert f["reason"] == ref.classify(fmt, line, DAY)[0], line


def test_nan_and_infinity_tokens_make_a_json_line_broken(spark):
    fast, general = _both_paths(spark, "json", NON_JSON)
    assert [r["reason"] for r in fast] == [r["reason"] for r in general] == ["broken_json"] * len(NON_JSON)
    assert [ref.classify("json", line, DAY)[0] for line in NON_JSON] == ["broken_json"] * len(NON_JSON)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(lines=st.lists(st.one_of(mutated("csv"), mutated("json")), min_size=1, max_size=60))
def test_fast_and_general_paths_agree_on_mutated_lines(spark, lines):
    """Mutations that keep a line canonical take the fast path: its verdict and values are the general path's."""
    for fmt in ("csv", "json"):
        fast, general = _both_paths(spark, fmt, lines)
        for line, f, g in zip(lines, fast, general, strict=True):
            assert [f[c] for c in COMPARED] == [g[c] for c in COMPARED], (fmt, line)


INVALID_UTF8 = {"csv": [CSV_T.encode().replace(b"SYMA", b"SY\xffA"), CSV_Q.encode().replace(b"NYSE", b"NY\xc3(E"),
                        CSV_T.encode().replace(b"SYMA", b"SY\xed\xa0\x80"), CSV_T.encode() + b"\xe2\x82",
                        CSV_T.encode().replace(b"SYMA", "SYMé".encode())],
                "json": [JSON_T.encode().replace(b"SYMA", b"SY\xc0\xafA"), JSON_Q.encode().replace(b"SYMA", b"\xfe"),
                         JSON_T.encode()[:-1] + b"\x80}", JSON_T.encode().replace(b"SYMA", "S€MA".encode())]}


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_lines_that_are_not_utf8_are_bad_encoding_on_both_paths(spark, fmt):
    """Spark keeps a line's bytes as read; one that is not UTF-8 must not reach a string column of the output."""
    raw = INVALID_UTF8[fmt]
    df = spark.createDataFrame([(i, b) for i, b in enumerate(raw)], "i int, b binary").selectExpr(
        "i", "cast(b AS string) AS value")
    fn = {"csv": csv_fields, "json": json_fields}[fmt]
    for fast in (True, False):
        rows = sorted(classify(fn(df, fast=fast), DAY).select("i", "reason", "detail").collect(),
                      key=lambda r: r["i"])
        expected = [ref.classify(fmt, b.decode("utf-8", "surrogateescape"), DAY)[0] for b in raw]
        assert [r["reason"] for r in rows] == expected
        assert expected == ["bad_encoding"] * (len(raw) - 1) + [None]  # the last line is valid UTF-8
        assert "not valid UTF-8" in rows[0]["detail"]
