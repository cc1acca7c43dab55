from __future__ import annotations

import datetime as dt
import random
import re

import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F

from transforms.analytics import presort
from transforms.analytics.presort import presorted
from transforms.analytics.timeutil import epoch_us

KEYS = ["trade_dt", "symbol", "exchange"]


def _rows(seed: int = 7, n: int = 3000) -> list[tuple]:
    """Trades (kind 0) and quotes (kind 1) of 40 keys, with ties in time, null times and times hours apart."""
    rng = random.Random(seed)
    day = dt.date(2020, 8, 10)
    start = dt.datetime(2020, 8, 10, 9, 30)
    rows = []
    for i in range(n):
        sym, exch = f"S{rng.randrange(20):02d}", rng.choice(["NYSE", "NASDAQ"])
        tm = None if rng.random() < 0.02 else start + dt.timedelta(microseconds=rng.randrange(0, 10**10, 250_000))
        kind = rng.randrange(2)
        rows.append((day, sym, exch, tm, i, kind, float(i) if kind == 0 else None))
    return rows


def _last_trade(df, use_presort: bool):
    if use_presort:
        df = presorted(df, KEYS, epoch_us("event_tm"), F.col("kind"))
    w = (Window.partitionBy(*KEYS).orderBy("event_tm", "kind", "seq")
         .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    return df.withColumn("last_pr", F.last("pr", ignorenulls=True).over(w))


def _oracle(rows: list[tuple]) -> list[tuple]:
    """Plain Python: per key, rows in (time nulls first, kind, seq) order, carrying the last trade price."""
    out, last = [], {}
    for r in sorted(rows, key=lambda r: (r[:3], r[3] is not None, r[3] or dt.datetime.min, r[5], r[4])):
        key = r[:3]
        if r[6] is not None:
            last[key] = r[6]
        out.append((*r, last.get(key)))
    return out


@pytest.mark.parametrize("time_bits", [37, 60, 20], ids=["default", "hash-collisions", "time-wraps"])
def test_window_results_do_not_depend_on_the_presort(spark, monkeypatch, time_bits):
    # 60 time bits leave 3 hash bits for 40 keys (colliding keys interleave); 20 bits wrap every ~1 s
    monkeypatch.setattr(presort, "_TIME_BITS", time_bits)
    rows = _rows()
    df = spark.createDataFrame(rows, "trade_dt date, symbol string, exchange string, event_tm timestamp_ntz, "
                                     "seq int, kind int, pr double")
    got = _last_trade(df, use_presort=True)
    assert sorted(map(tuple, got.collect()), key=repr) == sorted(_oracle(rows), key=repr)
    assert got.columns == [*df.columns, "last_pr"]


def test_presort_is_one_long_key_in_the_windows_shuffle(spark):
    df = spark.createDataFrame(_rows(n=50), "trade_dt date, symbol string, exchange string, "
                                            "event_tm timestamp_ntz, seq int, kind int, pr double")
    plan = _last_trade(df, use_presort=True)._jdf.queryExecution().executedPlan().toString()
    assert len(re.findall(r"(?<!Broadcast)Exchange ", plan)) == 1, plan  # the Window reuses the repartition
    assert re.search(r"Sort \[_tf_presort#\d+L ASC NULLS FIRST\], false", plan), plan
    assert presorted(df, [], F.col("seq")) is df


def test_partition_count_follows_the_optimizers_size_estimate(spark):
    floor = int(spark.conf.get("spark.sql.shuffle.partitions"))
    small = spark.createDataFrame([(1, 2)], "k int, t long")
    big = spark.range(10**9).selectExpr("id % 1000 AS k", "id AS t")  # estimated, never run: 16 GB of rows
    estimate = big._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()

    def shuffle_partitions(df) -> int:
        plan = presorted(df, ["k"], F.col("t"))._jdf.queryExecution().executedPlan().toString()
        return int(re.search(r"hashpartitioning\(k#\d+L?, (\d+)\)", plan).group(1))

    assert shuffle_partitions(small) == floor
    assert shuffle_partitions(big) == min(1024, -(-estimate // presort._BYTES_PER_TASK)) > floor
