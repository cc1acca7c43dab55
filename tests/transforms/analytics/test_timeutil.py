"""transforms/analytics/timeutil.py: durations, zone-free epoch arithmetic, and the one-line errors the transforms
raise through it for bad parameters and inputs."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import jsonschema
import pytest
from pyspark.sql import functions as F

from engine.errors import TransformError
from tests.transforms.analytics.helpers import ctx, params
from transforms.analytics.bars import bars
from transforms.analytics.moving_average import moving_average
from transforms.analytics.timeutil import (
    epoch_us,
    from_epoch_us,
    parse_duration_us,
    require_columns,
    require_date,
)


def test_bad_parameters_and_inputs_fail_with_one_line(spark, frames):
    with pytest.raises(jsonschema.ValidationError, match="'7 fortnights' does not match"):
        params("bars", bar_length="7 fortnights")  # the spec's validation refuses it before Spark starts
    called_directly = {**params("bars"), "bar_length": "7 fortnights"}  # as another plugin might call it
    with pytest.raises(TransformError, match="bar_length '7 fortnights' is not a duration"):
        bars(ctx(spark, None), {"trades": frames[0]}, called_directly)
    with pytest.raises(TransformError, match=r"input 'trades' lacks column\(s\) \['nope'\]"):
        moving_average(ctx(spark, None), {"trades": frames[0]}, params("moving_average", value="nope"))


def test_durations():
    assert parse_duration_us("30 minutes") == 30 * 60 * 10**6
    assert parse_duration_us("1 minute") == 60 * 10**6
    assert parse_duration_us("5 min") == 300 * 10**6
    assert parse_duration_us("500 ms") == 500_000
    assert parse_duration_us("2 hours") == 7200 * 10**6
    with pytest.raises(TransformError):
        parse_duration_us("0 seconds")


def test_epoch_us_and_from_epoch_us_count_wall_clock_microseconds(spark):
    """Microseconds since 1970-01-01 00:00:00 of the wall-clock time, also before the epoch, in summer time and in
    the hour a switch back to winter time repeats in the session's zone, and in the hour the switch to summer
    time skips there (Spark's timestamp_diff put 2020-03-08 02:30 an hour late with a New York session zone, which
    a user may configure); from_epoch_us gives the time back."""
    times = [dt.datetime(1970, 1, 1), dt.datetime(1969, 12, 31, 23, 59, 59, 999_999),
             dt.datetime(2020, 8, 10, 9, 30, 0, 1), dt.datetime(2020, 11, 1, 1, 30),
             dt.datetime(2020, 3, 8, 2, 30, 0, 123_456), dt.datetime(1900, 2, 28, 23, 59, 59, 1)]
    expected = [(t - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1) for t in times]
    assert expected[:2] == [0, -1]
    df = spark.createDataFrame([(i, t) for i, t in enumerate(times)], "i INT, tm TIMESTAMP_NTZ")
    previous = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        rows = sorted(df.select("i", epoch_us("tm").alias("us"), epoch_us(F.col("tm")).alias("us_col"),
                                from_epoch_us(epoch_us("tm")).alias("back")).collect())
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous)
    assert [r.us for r in rows] == expected
    assert [r.us_col for r in rows] == expected
    assert [r.back for r in rows] == times


def test_require_date_returns_the_processing_date_or_fails_naming_the_transform():
    day = dt.date(2020, 8, 10)
    assert require_date(SimpleNamespace(date=day), "prior_close") == day
    for no_date in (SimpleNamespace(date=None), SimpleNamespace()):
        with pytest.raises(TransformError) as info:
            require_date(no_date, "prior_close")
        assert str(info.value) == "transform 'prior_close' needs a processing date (run with --date)"


def test_require_columns_names_only_the_missing_columns():
    df = SimpleNamespace(columns=["symbol", "trade_pr"])
    assert require_columns(df, ["trade_pr", "symbol"], transform="bars", input_name="trades") is None
    assert require_columns(df, [], transform="bars", input_name="trades") is None
    with pytest.raises(TransformError) as info:
        require_columns(df, ["event_tm", "symbol", "trade_size"], transform="bars", input_name="trades")
    assert str(info.value) == ("transform 'bars': input 'trades' lacks column(s) ['event_tm', 'trade_size']; "
                               "it has ['symbol', 'trade_pr']")
