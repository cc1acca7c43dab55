"""Writing an output: a partition column of another type than the dataset's folders is refused before any file
is written (a timestamp trade_dt beside date folders made readers count both)."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.spec import OutputSpec
from engine.storage.local import LocalStorage
from engine.writer import PartitionTypeError, write_output

OUT = OutputSpec("blocks", "analytics/blocks", ("trade_dt",), "overwrite_partitions", ("trade_dt=2024-01-05",))


def test_a_partition_column_of_another_type_than_the_datasets_folders_is_refused(tmp_path, spark) -> None:
    storage = LocalStorage(tmp_path / "wh")
    day = spark.createDataFrame([(dt.date(2024, 1, 5), 1), (dt.date(2024, 1, 4), 2)], "trade_dt date, n int")
    assert write_output(spark, day, OUT, storage, "run-1").rows == 2
    before = sorted(p.name for p in (tmp_path / "wh" / "analytics" / "blocks").iterdir())
    as_timestamp = day.selectExpr("CAST(trade_dt AS timestamp) AS trade_dt", "n")
    as_text = day.selectExpr("date_format(trade_dt, 'yyyyMMdd') AS trade_dt", "n")
    for wrong, kind in ((as_timestamp, "timestamp_ntz"), (as_text, "string")):
        with pytest.raises(PartitionTypeError) as err:
            write_output(spark, wrong, OUT, storage, "run-2")
        assert str(err.value).startswith(f"output blocks: column trade_dt is {kind}, but dataset "
                                         "'analytics/blocks' is partitioned by dates (trade_dt=2024-01-04, "
                                         "trade_dt=2024-01-05)"), err.value
        assert "cast trade_dt to date" in str(err.value)
    assert sorted(p.name for p in (tmp_path / "wh" / "analytics" / "blocks").iterdir()) == before
    assert not (tmp_path / "wh" / ".tickflow_staging").exists() or not any(
        (tmp_path / "wh" / ".tickflow_staging").rglob("*.parquet"))
    # the right type writes, and a string-partitioned dataset takes any string
    assert write_output(spark, day.where("n = 1"), OUT, storage, "run-3").rows == 1
    names = OutputSpec("names", "names", ("symbol",), "overwrite_partitions")
    write_output(spark, spark.createDataFrame([("AAPL", 1)], "symbol string, n int"), names, storage, "run-4")
    write_output(spark, spark.createDataFrame([("2024", 1)], "symbol string, n int"), names, storage, "run-5")
