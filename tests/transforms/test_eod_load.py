"""End-of-day load: exact rows against the plain-Python reference, corrections and the tie-break."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from datagen import GenConfig, generate
from tests.transforms import preprocess_reference as ref
from tests.transforms.preprocess_helpers import raw_context
from transforms.eod_load import (
    CLOSE_COLUMNS,
    KEY,
    QUOTE_COLUMNS,
    TRADE_COLUMNS,
    eod_frames,
    latest_arrival,
    repeated_key_hashes,
    split_repeated,
)
from transforms.ingest import ingest_frames

DAY = dt.date(2020, 8, 6)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, spark):
    raw = tmp_path_factory.mktemp("raw")
    generate(GenConfig(out=raw, seed=11, start=DAY, days=1, events=3000, symbols=3, parts=4, bad_rate=0.01,
                       correction_rate=0.08))
    events = ingest_frames(raw_context(spark, raw, DAY), {"max_bad_share": 1.0})["events"]
    out = eod_frames(events)
    return raw, {name: df.collect() for name, df in out.items()}


def _expected(raw, rec: str, columns: tuple[str, ...]) -> Counter:
    best = ref.eod(ref.ingest_day(raw, DAY))
    rows = Counter()
    for key, r in best.items():
        if key[1] == rec:
            values = dict(r.values, source_file=r.source_file)  # type: ignore[arg-type]
            rows[tuple(values[c] for c in columns)] += 1
    return rows


@pytest.mark.parametrize(("name", "rec", "columns"), [("trade", "T", TRADE_COLUMNS), ("quote", "Q", QUOTE_COLUMNS)])
def test_eod_rows_exactly_match_reference(loaded, name, rec, columns):
    raw, out = loaded
    got = Counter(tuple(r[c] for c in columns) for r in out[name])
    assert got == _expected(raw, rec, columns)
    assert list(out[name][0].asDict()) == list(columns)


def test_each_keys_close_is_its_last_trade_after_corrections(loaded):
    raw, out = loaded
    last: dict[tuple, dict] = {}
    for key, r in ref.eod(ref.ingest_day(raw, DAY)).items():
        v = r.values
        if key[1] == "T" and (key[2:4] not in last or (v["event_tm"], v["event_seq_nb"]) > (
                last[key[2:4]]["event_tm"], last[key[2:4]]["event_seq_nb"])):
            last[key[2:4]] = v
    expected = {k: (DAY, *k, v["event_tm"], v["event_seq_nb"], v["trade_pr"]) for k, v in last.items()}
    got = {(r["symbol"], r["exchange"]): tuple(r) for r in out["close"]}
    assert got == expected and len(got) == len(out["close"]) > 3
    assert list(out["close"][0].asDict()) == list(CLOSE_COLUMNS)


def test_corrections_keep_the_latest_arrival(loaded):
    raw, out = loaded
    records = [r for r in ref.ingest_day(raw, DAY) if r.reason is None]
    by_key: dict[tuple, list] = {}
    for r in records:
        v = r.values
        by_key.setdefault((v["rec_type"], v["symbol"], v["exchange"], v["event_tm"], v["event_seq_nb"]), []).append(r)
    corrected = {k: rs for k, rs in by_key.items() if len(rs) > 1 and k[0] == "T"}
    assert len(corrected) > 20
    got = {(r["symbol"], r["exchange"], r["event_tm"], r["event_seq_nb"]): r for r in out["trade"]}
    for key, rs in corrected.items():
        latest = max(rs, key=lambda r: (r.values["arrival_tm"], r.source_file, r.line_no))
        row = got[key[1:]]
        assert row["arrival_tm"] == latest.values["arrival_tm"] and row["trade_pr"] == latest.values["trade_pr"]
        assert len({r.values["trade_pr"] for r in rs}) > 1  # a correction changes the price


def test_tie_break_same_arrival_later_file_then_later_line(spark):
    rows = [
        ("csv/2020-08-05/NYSE/part-00001.txt", 1, 10.0),
        ("csv/2020-08-05/NYSE/part-00002.txt", 1, 11.0),
        ("csv/2020-08-05/NYSE/part-00002.txt", 2, 12.0),  # same arrival, same (greatest) file, later line
        ("csv/2020-08-05/NYSE/part-00000.txt", 9, 9.0),
    ]
    schema = ("trade_dt date, rec_type string, symbol string, exchange string, event_tm timestamp_ntz, "
              "event_seq_nb bigint, arrival_tm timestamp_ntz, trade_pr double, trade_size bigint, bid_pr double, "
              "bid_size bigint, ask_pr double, ask_size bigint, execution_id string, source_file string, "
              "line_no bigint")
    t = dt.datetime(2020, 8, 5, 9, 31, 0, 500000)
    arrival = dt.datetime(2020, 8, 5, 10, 0)
    data = [(dt.date(2020, 8, 5), "T", "SYMA", "NYSE", t, 1, arrival, pr, 100, None, None, None, None, None, f, n)
            for f, n, pr in rows]
    out = eod_frames(spark.createDataFrame(data, schema))
    trades = out["trade"].collect()
    assert [r["trade_pr"] for r in trades] == [12.0]
    assert out["quote"].count() == 0


def _resolved(events, repeated):
    """Every record type's rows with corrections resolved: the single rows plus the ranked repeated ones."""
    single, multiple = split_repeated(events, repeated)
    return single.unionByName(multiple)


def test_only_repeated_keys_are_ranked_and_a_hash_collision_changes_nothing(loaded, spark, tmp_path):
    """Rows whose key hash is unique pass straight through; flagging unique keys too (what a hash collision
    does) must give the same rows as ranking everything."""
    from pyspark.sql import functions as F

    raw, _ = loaded
    events = ingest_frames(raw_context(spark, raw, DAY), {"max_bad_share": 1.0})["events"]
    repeated = repeated_key_hashes(events)
    hashes = events.select(F.xxhash64(*KEY).alias("h")).groupBy("h").count()
    assert repeated.count() == hashes.where("count > 1").count() > 20  # exactly the corrected keys
    every_hash = events.select(F.xxhash64(*KEY).alias("_tf_key_hash")).distinct()
    collided = _resolved(events, every_hash)
    expected = latest_arrival(events)
    columns = sorted(expected.columns)
    assert Counter(map(tuple, collided.select(columns).collect())) == Counter(
        map(tuple, expected.select(columns).collect()))
    assert Counter(map(tuple, _resolved(events, repeated).select(columns).collect())) == Counter(
        map(tuple, expected.select(columns).collect()))
