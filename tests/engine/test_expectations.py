"""Expectations on real Spark: every action, every dataset-level check, quarantine rows, failure messages."""

from __future__ import annotations

import json

import pytest

from engine.expectations import (
    ExpectationError,
    ExpectationFailed,
    ExpectationSpecError,
    count_dropped,
    enforce,
    evaluate,
    expectation_problems,
    for_output,
    parse_expectations,
    split_rows,
)

ROWS = [  # symbol, bid_pr, ask_pr, size, source_file
    ("AAA", 10.0, 10.5, 100, "f1"),
    ("AAA", 11.0, 10.0, 200, "f1"),   # bid > ask
    ("BBB", None, 20.0, 300, "f2"),   # bid null -> expression is NULL -> violation
    ("BBB", 19.0, 19.5, -5, "f2"),    # negative size
    ("CCC", 5.0, 5.25, 50, None),
    ("CCC", 5.0, 5.25, 50, None),     # exact duplicate
]
COLUMNS = ["symbol", "bid_pr", "ask_pr", "size", "source_file"]


@pytest.fixture(scope="module")
def df(spark):
    return spark.createDataFrame(ROWS, "symbol string, bid_pr double, ask_pr double, size bigint, source_file string")


def py_violates_bid_ask(row) -> bool:
    bid, ask = row[1], row[2]
    return bid is None or ask is None or not bid <= ask


def test_parse_defaults_and_kinds():
    exps = parse_expectations([
        {"name": "bid_le_ask", "expr": "bid_pr <= ask_pr"},
        {"name": "n", "row_count": {"min": 1, "max": 10}},
        {"name": "key", "unique": ["symbol", "size"], "action": "warn", "output": "bad"},
        {"name": "nn", "not_null": "symbol"},
    ])
    assert [(e.kind, e.action) for e in exps] == [("expr", "warn"), ("row_count", "fail"), ("unique", "warn"),
                                                  ("not_null", "fail")]
    assert exps[2].columns == ("symbol", "size") and exps[2].output == "bad"
    assert exps[3].columns == ("symbol",)
    assert [e.name for e in for_output(exps, "good", "good")] == ["bid_le_ask", "n", "nn"]
    assert [e.name for e in for_output(exps, "bad", "good")] == ["key"]


@pytest.mark.parametrize("items, fragment", [
    ([{"expr": "a > 0"}], "'name' is required"),
    ([{"name": "x", "expr": "a > 0", "action": "explode"}], "action 'explode'"),
    ([{"name": "x", "unique": ["a"], "action": "drop"}], "cannot drop rows"),
    ([{"name": "x", "expr": "a > 0", "unique": ["a"]}], "exactly one of"),
    ([{"name": "x", "row_count": {"min": 5, "max": 1}}], "greater than"),
    ([{"name": "x", "not_null": []}], "non-empty list"),
    ([{"name": "x", "expr": "a > 0", "severity": 1}], "unknown key(s) severity"),
    ([{"name": "x", "expr": "a > 0"}, {"name": "x", "expr": "b > 0"}], "duplicate name(s) x"),
])
def test_parse_errors_name_the_item(items, fragment):
    with pytest.raises(ExpectationSpecError) as exc:
        parse_expectations(items)
    assert fragment in str(exc.value)


def test_validation_gets_every_bad_item_with_its_index_and_key():
    """parse_expectations stops at the first bad item; validation reports them all, each at its own line."""
    good, errors = expectation_problems([
        {"name": "ok", "expr": "a > 0"},
        {"name": "x", "expr": "a > 0", "action": "explode"},
        {"expr": "a > 0"},
        {"name": "ok", "not_null": ["a"]},
    ])
    assert [(i, e.name) for i, e in good] == [(0, "ok")]
    assert [(e.index, e.key, e.detail) for e in errors] == [
        (1, "action", "action 'explode' is not one of warn, drop, fail"),
        (2, None, "'name' is required: letters, digits and _ (e.g. bid_le_ask)"),
        (3, "name", "duplicate name 'ok' (expectations[0] has it too); names are unique within a step"),
    ]
    assert str(errors[0]) == "expectations[1] (x): action 'explode' is not one of warn, drop, fail"


def test_warn_counts_and_keeps_rows(df):
    exps = parse_expectations([{"name": "bid_le_ask", "expr": "bid_pr <= ask_pr", "action": "warn"}])
    kept, dropped = split_rows(df, exps)
    assert dropped is None and kept.count() == len(ROWS)
    [res] = evaluate(df, exps)
    expected_failed = sum(py_violates_bid_ask(r) for r in ROWS)
    assert (res.name, res.action, res.failed, res.passed, res.ok) == (
        "bid_le_ask", "warn", expected_failed, len(ROWS) - expected_failed, False)
    enforce(df, exps, [res])  # warn never raises


def test_drop_moves_rows_to_quarantine_with_reason(df):
    exps = parse_expectations([
        {"name": "bid_le_ask", "expr": "bid_pr <= ask_pr", "action": "drop"},
        {"name": "size_positive", "expr": "size > 0", "action": "drop"},
    ])
    kept, dropped = split_rows(df, exps)
    assert kept.columns == COLUMNS
    kept_rows = sorted(tuple(r) for r in kept.collect())
    py_kept = sorted(r for r in ROWS if not py_violates_bid_ask(r) and r[3] > 0)
    assert kept_rows == py_kept
    got = dropped.collect()
    assert dropped.columns == ["source_file", "line_no", "raw_line", "reason", "detail", "partition"]
    # reason is the first violated drop expectation, in declaration order
    py_reasons = sorted(("bid_le_ask" if py_violates_bid_ask(r) else "size_positive", r[4])
                        for r in ROWS if py_violates_bid_ask(r) or r[3] <= 0)
    assert sorted((r["reason"], r["source_file"]) for r in got) == py_reasons
    for r in got:
        original = json.loads(r["raw_line"])
        assert set(original) == set(COLUMNS)  # every original column, nulls included
        assert r["partition"] == "B" and r["line_no"] is None and r["reason"] in r["detail"]
    assert count_dropped(dropped) == {k: sum(1 for reason, _ in py_reasons if reason == k)
                                      for k in {reason for reason, _ in py_reasons}}

    # after writing: the kept data passes, the dropped counts are reported as failures
    results = evaluate(kept, exps, dropped_counts=count_dropped(dropped))
    by = {r.name: r for r in results}
    assert by["bid_le_ask"].failed == 2 and by["size_positive"].failed == 1
    assert by["bid_le_ask"].passed == len(py_kept) and not by["bid_le_ask"].ok
    assert "quarantine" in by["bid_le_ask"].detail
    enforce(kept, exps, results)  # drop never fails the step


def test_fail_names_expectation_and_shows_rows(df):
    exps = parse_expectations([{"name": "bid_le_ask", "expr": "bid_pr <= ask_pr", "action": "fail"}])
    results = evaluate(df, exps)
    with pytest.raises(ExpectationFailed) as exc:
        enforce(df, exps, results)
    msg = str(exc.value)
    assert "'bid_le_ask'" in msg and "bid_pr <= ask_pr" in msg
    assert f"failed for {sum(py_violates_bid_ask(r) for r in ROWS)} of {len(ROWS)}" in msg
    assert "{bid_pr=11.0, ask_pr=10.0, symbol=AAA" in msg and "{bid_pr=null, ask_pr=20.0" in msg
    assert "\n" not in msg  # one line: the runner shows only an error's first line
    assert exc.value.results[0].name == "bid_le_ask"


def test_fail_sample_is_limited_to_five(spark):
    many = spark.range(0, 50).selectExpr("id", "id % 2 = 0 AS even")
    exps = parse_expectations([{"name": "all_even", "expr": "even", "action": "fail"}])
    with pytest.raises(ExpectationFailed) as exc:
        enforce(many, exps, evaluate(many, exps))
    assert "failed for 25 of 50 rows" in str(exc.value)
    assert str(exc.value).count("{even=false, id=") == 5
    assert exc.value.results[0].detail.count("{even=false, id=") == 5


def test_row_count_bounds(df):
    exps = parse_expectations([{"name": "enough", "row_count": {"min": 1, "max": 100}},
                               {"name": "too_few", "row_count": {"min": 1000}},
                               {"name": "at_most_3", "row_count": {"max": 3}, "action": "warn"}])
    by = {r.name: r for r in evaluate(df, exps)}
    assert by["enough"].ok and by["enough"].action == "check"
    assert not by["too_few"].ok and f"{len(ROWS)} rows" in by["too_few"].detail
    assert not by["at_most_3"].ok and by["at_most_3"].action == "warn"
    with pytest.raises(ExpectationFailed) as exc:
        enforce(df, exps, list(by.values()))
    assert "'too_few'" in str(exc.value) and "at_most_3" not in str(exc.value)


def test_unique_counts_duplicates(df):
    exps = parse_expectations([{"name": "uniq_row", "unique": ["symbol", "bid_pr", "ask_pr", "size"]},
                               {"name": "uniq_symbol", "unique": ["symbol"], "action": "warn"}])
    by = {r.name: r for r in evaluate(df, exps)}
    py_extra = len(ROWS) - len({r[:4] for r in ROWS})
    assert (by["uniq_row"].failed, by["uniq_row"].passed, by["uniq_row"].ok) == (py_extra, len(ROWS) - py_extra,
                                                                                False)
    assert by["uniq_symbol"].failed == len(ROWS) - len({r[0] for r in ROWS})
    with pytest.raises(ExpectationFailed) as exc:
        enforce(df, exps, list(by.values()))
    assert "'uniq_row'" in str(exc.value) and "{symbol=CCC, bid_pr=5.0, ask_pr=5.25, size=50, count=2}" in str(
        exc.value)
    assert "uniq_symbol" not in str(exc.value)


def test_unique_passes_on_a_key(df):
    exps = parse_expectations([{"name": "k", "unique": ["symbol", "size"]}])
    [res] = evaluate(df.dropDuplicates(), exps)
    assert res.ok and res.failed == 0


def test_not_null(df):
    exps = parse_expectations([{"name": "nn", "not_null": ["bid_pr", "source_file"]},
                               {"name": "sym", "not_null": ["symbol"]}])
    by = {r.name: r for r in evaluate(df, exps)}
    py_failed = sum(1 for r in ROWS if r[1] is None or r[4] is None)
    assert (by["nn"].failed, by["nn"].passed, by["nn"].ok) == (py_failed, len(ROWS) - py_failed, False)
    assert "bid_pr: 1 null" in by["nn"].detail and "source_file: 2 null" in by["nn"].detail
    assert by["sym"].ok
    with pytest.raises(ExpectationFailed) as exc:
        enforce(df, exps, list(by.values()))
    assert "'nn'" in str(exc.value) and "'sym'" not in str(exc.value)


def test_bad_expression_and_column_are_named(df):
    with pytest.raises(ExpectationError) as exc:
        evaluate(df, parse_expectations([{"name": "typo", "expr": "bid_prr <= ask_pr"}]))
    assert "typo" in str(exc.value) and "bid_prr" in str(exc.value)
    with pytest.raises(ExpectationError) as exc:
        evaluate(df, parse_expectations([{"name": "not_bool", "expr": "bid_pr + 1"}]))
    assert "not a boolean" in str(exc.value)
    with pytest.raises(ExpectationError) as exc:
        evaluate(df, parse_expectations([{"name": "nn", "not_null": ["nope"]}]))
    assert "nope" in str(exc.value)


def test_drop_serialises_dates_timestamps_and_decimals(spark):
    df = spark.sql("""
        SELECT * FROM VALUES
          (DATE'2020-08-06', TIMESTAMP_NTZ'2020-08-06 09:30:00.123', CAST(1.50 AS DECIMAL(10, 2)), 'f'),
          (DATE'2020-08-06', TIMESTAMP_NTZ'2020-08-06 09:31:00.5', CAST(-2.25 AS DECIMAL(10, 2)), 'g')
        AS t(trade_dt, event_tm, price, source_file)""")
    exps = parse_expectations([{"name": "price_positive", "expr": "price > 0", "action": "drop"}])
    kept, dropped = split_rows(df, exps)
    [bad] = dropped.collect()
    raw = json.loads(bad["raw_line"])
    assert raw["trade_dt"] == "2020-08-06" and raw["event_tm"].startswith("2020-08-06T09:31:00.5")
    assert float(raw["price"]) == -2.25 and bad["source_file"] == "g" and bad["reason"] == "price_positive"
    assert [r["source_file"] for r in kept.collect()] == ["f"]


def test_observed_while_writing_equals_a_separate_aggregation(spark, df, tmp_path):
    """The writer observes the aggregates on the write itself: the same results as one aggregation job."""
    from pyspark.sql import Observation

    from engine.expectations import aggregates

    exps = parse_expectations([
        {"name": "bid_le_ask", "expr": "bid_pr <= ask_pr", "action": "warn"},
        {"name": "size_positive", "expr": "size > 0", "action": "warn"},
        {"name": "keys", "not_null": ["bid_pr", "source_file"], "action": "warn"},
        {"name": "n", "row_count": {"min": 1, "max": 3}, "action": "warn"},
        {"name": "dup", "unique": ["symbol", "size"], "action": "warn"},
    ])
    observation = Observation()
    df.observe(observation, *aggregates(df, exps)).write.parquet(str(tmp_path / "out"))
    written = spark.read.parquet(str(tmp_path / "out"))
    observed = evaluate(written, exps, observed=observation.get)
    assert observed == evaluate(written, exps)
    by = {r.name: r for r in observed}
    assert by["bid_le_ask"].failed == sum(py_violates_bid_ask(r) for r in ROWS)
    assert by["size_positive"].failed == sum(1 for r in ROWS if not r[3] > 0)
    assert by["keys"].failed == sum(1 for r in ROWS if r[1] is None or r[4] is None)
    assert not by["n"].ok and by["dup"].failed == 1


# ------------------------------------------------------------------------- quarantine: a rerun replaces
D1, D2 = "2024-01-04", "2024-01-05"
QUARANTINE_SCHEMA = ("source_file string, line_no bigint, raw_line string, reason string, detail string, "
                     "partition string, trade_dt date")


def _quarantine(spark, storage) -> dict[tuple[str, str], int]:
    """Rows of the quarantine dataset by (trade_dt, reason)."""
    rows = spark.read.parquet(storage.read_uri("quarantine")).groupBy("trade_dt", "reason").count().collect()
    return {(str(r["trade_dt"]), r["reason"]): r["count"] for r in rows}


def test_a_rerun_of_a_date_replaces_the_rows_its_output_dropped_and_nothing_else(spark, tmp_path):
    """The quarantine is shared (the ingest step's bad records, other outputs, other dates): rerunning a date
    replaces exactly what that output dropped for that date, also when the rerun drops nothing."""
    import datetime as dt

    from pyspark.sql import functions as F

    from engine.spec import OutputSpec
    from engine.storage.local import STAGING, LocalStorage
    from engine.writer import write_output, write_spark

    storage = LocalStorage(tmp_path / "wh")
    ingest_bad = spark.createDataFrame([("f", i, "x", "bad_price", "d", "B", dt.date(2024, 1, 4)) for i in range(2)],
                                       QUARANTINE_SCHEMA)
    pending = storage.begin_write("quarantine", "ingest", "overwrite_partitions", ("trade_dt",))
    write_spark(ingest_bad, pending)
    storage.commit(pending)

    def nums(n: int, day: str):
        return spark.range(n).withColumn("day", F.lit(day).cast("date"))

    # two steps' outputs of the same name, dropping rows into the same quarantine date
    a = OutputSpec("nums", "demo/a", ("day",), "overwrite_partitions")
    b = OutputSpec("nums", "demo/b", ("day",), "overwrite_partitions")
    not_three = parse_expectations([{"name": "not_three", "expr": "id % 3 != 0", "action": "drop"}])
    odd = parse_expectations([{"name": "odd", "expr": "id % 2 = 1", "action": "drop"}])
    assert write_output(spark, nums(10, D1), a, storage, "r1", expectations=not_three, quarantine_date=D1).dropped == 4
    assert write_output(spark, nums(10, D1), b, storage, "r1", expectations=odd, quarantine_date=D1).dropped == 5
    assert write_output(spark, nums(7, D2), a, storage, "r2", expectations=not_three, quarantine_date=D2).dropped == 3
    before = _quarantine(spark, storage)
    assert before == {(D1, "bad_price"): 2, (D1, "not_three"): 4, (D1, "odd"): 5, (D2, "not_three"): 3}

    rerun = write_output(spark, nums(10, D1), a, storage, "r3", expectations=not_three, quarantine_date=D1)
    assert rerun.dropped == 4 and rerun.rows == 6
    assert _quarantine(spark, storage) == before  # replaced, not appended a second time

    clean = write_output(spark, nums(10, D1).where("id % 3 != 0"), a, storage, "r4", expectations=not_three,
                         quarantine_date=D1)
    assert clean.dropped == 0
    assert _quarantine(spark, storage) == {(D1, "bad_price"): 2, (D1, "odd"): 5, (D2, "not_three"): 3}
    assert not (tmp_path / "wh" / STAGING).exists()


# ------------------------------------------------------------------------- a failure in the run report
def test_a_failure_shows_rows_in_its_one_line_and_carries_every_count_to_the_report(spark, tmp_path):
    """The runner keeps only an error's first line: it must hold the violating rows. The exception carries the
    results of every expectation of the output (passed ones too) for the failed step's report."""
    import re

    from engine.error_lines import essential_line
    from engine.report import write_report
    from engine.run_record import RunRecord, StepRecord
    from engine.spec import OutputSpec
    from engine.storage.local import LocalStorage
    from engine.writer import write_output

    trades = spark.createDataFrame([(i, f"SYM{i % 3}", 1000 * i, "a free-text comment " * 5) for i in range(10)],
                                   "id bigint, symbol string, trade_size bigint, note string")
    exps = parse_expectations([
        {"name": "size_small", "expr": "trade_size <= 4000", "action": "fail"},
        {"name": "has_symbol", "not_null": ["symbol"]},
        {"name": "id_positive", "expr": "id > 0", "action": "warn"},
    ])
    storage = LocalStorage(tmp_path / "wh")
    with pytest.raises(ExpectationFailed) as exc:
        write_output(spark, trades, OutputSpec("trades", "demo/trades"), storage, "r1", expectations=exps,
                     quarantine_date=D1)
    assert storage.read_uri("demo/trades") is None  # nothing committed

    line = essential_line(exc.value)
    assert line.startswith("ExpectationFailed: expectation 'size_small' (trade_size <= 4000) failed for 5 of 10 "
                           "rows; violating rows: {trade_size=")
    assert not line.endswith("...")  # within what the runner keeps
    shown = [int(v) for v in re.findall(r"\{trade_size=(\d+), id=\d+, symbol=SYM\d", line)]
    assert len(shown) >= 3 and all(v > 4000 for v in shown)

    by = {r.name: r for r in exc.value.results}
    assert [r.name for r in exc.value.results] == ["size_small", "has_symbol", "id_positive"]
    assert (by["size_small"].passed, by["size_small"].failed, by["size_small"].ok) == (5, 5, False)
    assert (by["has_symbol"].passed, by["has_symbol"].failed, by["has_symbol"].ok) == (10, 0, True)
    assert (by["id_positive"].passed, by["id_positive"].failed) == (9, 1)
    in_detail = sorted(int(v) for v in re.findall(r"\{trade_size=(\d+)", by["size_small"].detail))
    assert in_detail == [5000, 6000, 7000, 8000, 9000]
    assert [r.name for r in exc.value.failed] == ["size_small"]

    # the step record as the runner fills it for a failed step: its error line and the exception's results
    step = StepRecord(name="trades", transform="t", status="failed", error=line, expectations=exc.value.results)
    record = RunRecord(run_id="r1", pipeline="p", date=D1, spec_file="p.yaml", storage_root="wh", status="failed",
                       steps=[step])
    html_path, json_path = write_report(record, [], tmp_path / "report", None)
    data = json.loads(json_path.read_text())
    [got] = data["steps"]
    assert got["error"] == line
    assert [(e["name"], e["passed"], e["failed"]) for e in got["expectations"]] == [
        ("size_small", 5, 5), ("has_symbol", 10, 0), ("id_positive", 9, 1)]
    assert "{trade_size=9000, id=9, symbol=SYM0" in got["expectations"][0]["detail"]
    html = html_path.read_text()
    assert "{trade_size=9000, id=9, symbol=SYM0" in html and "failed for 5 of 10 rows; violating rows: {" in html
