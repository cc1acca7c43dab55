"""The read_dataset builtin on real Spark: damaged datasets are refused with the dataset and the folder or file
named, instead of Spark's cast error or silently wrong rows; healthy datasets read exactly as before."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.builtins import ParamProblem, read_dataset, read_dataset_preflight
from engine.context import PreflightContext, TransformContext
from engine.errors import TransformError
from engine.storage.local import LocalStorage

D4, D5 = dt.date(2024, 1, 4), dt.date(2024, 1, 5)
ROWS = [("A", 10.5, 100, D4), ("B", 11.0, 200, D4), ("A", 12.25, 50, D5), ("B", 11.5, 70, D5)]
TRADE_SCHEMA = "symbol string, trade_pr double, trade_size int, trade_dt date"


def make_ctx(spark: Any, root: Path) -> TransformContext:
    """What read_dataset uses of a context: the session and a local storage's dataset URI (None when absent)."""

    def reader(rel_path: str, partitions: list[str] | None = None) -> str | None:
        target = root / rel_path
        return str(target) if target.exists() else None

    return TransformContext(spark=spark, date=D5, step="read", log=logging.getLogger("test"),
                            _dataset_reader=reader, _raw_reader=lambda rel: None)


@pytest.fixture
def warehouse(spark: Any, tmp_path: Path) -> tuple[TransformContext, Path]:
    """A warehouse holding `trade`, partitioned by trade_dt, written by Spark (with its _SUCCESS and .crc files)."""
    root = tmp_path / "wh"
    spark.createDataFrame(ROWS, TRADE_SCHEMA).write.partitionBy("trade_dt").parquet(str(root / "trade"))
    return make_ctx(spark, root), root / "trade"


def rows(df: Any) -> list[tuple[Any, ...]]:
    return sorted(tuple(r) for r in df.collect())


def read(ctx: TransformContext, **params: Any) -> Any:
    return read_dataset(ctx, {}, {"path": "trade", **params})


def hand_written(path: Path, columns: dict[str, pa.Array]) -> None:
    """A parquet file written outside the engine (pyarrow), as someone fixing a day by hand would."""
    pq.write_table(pa.table(columns), path)


# -- healthy datasets --------------------------------------------------------------------------------------------
def test_a_healthy_dataset_reads_as_before(warehouse):
    ctx, _ = warehouse
    whole = read(ctx)
    assert dict(whole.dtypes)["trade_dt"] == "date"
    assert rows(whole.select("symbol", "trade_pr", "trade_size", "trade_dt")) == sorted(ROWS)
    day = read(ctx, partitions={"trade_dt": str(D5)}, columns=["symbol", "trade_pr", "trade_dt"])
    assert rows(day) == [("A", 12.25, D5), ("B", 11.5, D5)]
    both = read(ctx, partitions={"trade_dt": [str(D4), str(D5)]}, where="trade_size >= 70", columns=["symbol"])
    assert rows(both) == [("A",), ("B",), ("B",)]
    history = read(ctx, where=f"trade_dt < DATE'{D5}'", columns=["trade_dt", "symbol", "trade_pr"])
    assert rows(history) == [(D4, "A", 10.5), (D4, "B", 11.0)]
    missing = read(ctx, partitions={"trade_dt": "2024-01-08"})
    assert missing.count() == 0 and dict(missing.dtypes)["trade_dt"] == "date"


def test_hidden_folders_and_files_are_ignored(warehouse):
    """Spark skips names starting with '_' or '.': a damaged copy or a foreign file hidden so is no partition."""
    ctx, trade = warehouse
    shutil.copytree(trade / f"trade_dt={D5}", trade / ".trade_dt=garbage")
    shutil.copytree(trade / f"trade_dt={D5}", trade / "_trade_dt_backup")
    (trade / "_temporary").mkdir()
    day = trade / f"trade_dt={D5}"
    hand_written(day / ".part-x.parquet", {"symbol": pa.array(["C"])})  # no trade_pr, but hidden
    hand_written(day / "_part-y.parquet", {"symbol": pa.array(["C"]), "trade_pr": pa.array(["7"])})
    (day / "_SUCCESS").write_text("")
    (day / ".notes.txt").write_text("not parquet\n")
    (day / "empty.parquet").write_bytes(b"")  # a zero-length file: Spark skips it as well
    assert rows(read(ctx).select("symbol", "trade_pr", "trade_size", "trade_dt")) == sorted(ROWS)
    assert rows(read(ctx, partitions={"trade_dt": str(D5)}, columns=["symbol", "trade_pr"])) == [
        ("A", 12.25), ("B", 11.5)]


def test_a_null_partition_is_no_foreign_value(spark, tmp_path):
    """Spark writes a null partition value as __HIVE_DEFAULT_PARTITION__ and reads it back as null."""
    root = tmp_path / "wh"
    spark.createDataFrame([(1, D4), (2, None)], "id int, trade_dt date").write.partitionBy("trade_dt").parquet(
        str(root / "trade"))
    assert rows(read(make_ctx(spark, root))) == [(1, D4), (2, None)]


# -- foreign partition folders -----------------------------------------------------------------------------------
def copy_garbage(trade: Path) -> None:
    """Someone copied a day's folder by hand under a name that is no date."""
    shutil.copytree(trade / f"trade_dt={D5}", trade / "trade_dt=garbage")


FOREIGN = r"dataset 'trade' holds partition folder\(s\) whose value is not a date like the others: trade_dt=garbage;"


def test_a_foreign_partition_folder_is_refused_on_a_whole_read(warehouse):
    """Before: Spark inferred trade_dt as string and returned the copied rows a second time, under 'garbage'."""
    ctx, trade = warehouse
    copy_garbage(trade)
    with pytest.raises(TransformError, match=FOREIGN):
        read(ctx)


def test_a_foreign_partition_folder_is_refused_before_a_date_filter(warehouse):
    """Before: analyze's trade_history read failed at the first action with Spark's CAST_INVALID_INPUT, which
    names neither the dataset nor the folder."""
    ctx, trade = warehouse
    copy_garbage(trade)
    (trade / "trade_dt=2024-13-01").mkdir()  # no real date either
    with pytest.raises(TransformError, match=FOREIGN.replace("garbage;", "2024-13-01, trade_dt=garbage;")):
        read(ctx, where=f"trade_dt < DATE'{D5}'", columns=["trade_dt", "symbol", "trade_pr"])


def test_a_foreign_partition_folder_is_refused_when_a_missing_date_reads_the_schema_of_all(warehouse):
    """A named date that does not exist reads no rows with the whole dataset's schema: before, trade_dt came
    back as a string there. A date that exists reads only its own folder, which the copy cannot spoil."""
    ctx, trade = warehouse
    copy_garbage(trade)
    with pytest.raises(TransformError, match=FOREIGN):
        read(ctx, partitions={"trade_dt": "2024-01-08"})
    assert rows(read(ctx, partitions={"trade_dt": str(D5)}, columns=["symbol"])) == [("A",), ("B",)]


def test_a_foreign_value_of_a_number_partition_is_refused(spark, tmp_path):
    root = tmp_path / "wh"
    spark.createDataFrame([(1, 10), (2, 11), (3, -2)], "id int, n int").write.partitionBy("n").parquet(
        str(root / "trade"))
    trade = root / "trade"
    shutil.copytree(trade / "n=10", trade / "n=10 (copy)")
    with pytest.raises(TransformError, match=r"whose value is not a number like the others: n=10 \(copy\);"):
        read(make_ctx(spark, root))


# -- schema drift ------------------------------------------------------------------------------------------------
def test_a_file_without_a_read_column_is_refused(warehouse):
    """Before: Spark read with the schema of another file and returned NULL trade_pr for the hand-written one."""
    ctx, trade = warehouse
    hand_written(trade / f"trade_dt={D5}" / "part-x.parquet",
                 {"symbol": pa.array(["C"]), "trade_size": pa.array([5], pa.int32())})
    with pytest.raises(TransformError, match=rf"dataset 'trade': file trade_dt={D5}/part-x.parquet has no column "
                                             r"trade_pr \(other files have it as double\)"):
        read(ctx, partitions={"trade_dt": str(D5)})
    with pytest.raises(TransformError, match="has no column trade_pr"):
        read(ctx, partitions={"trade_dt": [str(D4), str(D5)]}, columns=["symbol", "trade_pr"])


def test_a_file_with_a_retyped_column_is_refused(warehouse):
    """Before: Spark failed at the first action with PARQUET_COLUMN_DATA_TYPE_MISMATCH and a full file URI."""
    ctx, trade = warehouse
    hand_written(trade / f"trade_dt={D5}" / "part-x.parquet",
                 {"symbol": pa.array(["C"]), "trade_pr": pa.array(["7.5"]), "trade_size": pa.array([5], pa.int32())})
    with pytest.raises(TransformError, match=rf"dataset 'trade': file trade_dt={D5}/part-x.parquet has trade_pr as "
                                             r"string \(other files have it as double\)"):
        read(ctx, partitions={"trade_dt": [str(D4), str(D5)]}, columns=["symbol", "trade_pr"])


def test_only_the_columns_read_matter_when_columns_are_given(warehouse):
    """A column missing from one file but not read is harmless; one the `where` filters on is read."""
    ctx, trade = warehouse
    hand_written(trade / f"trade_dt={D5}" / "part-x.parquet",
                 {"symbol": pa.array(["C"]), "trade_pr": pa.array([7.5]), "venue": pa.array(["X"])})
    got = read(ctx, partitions={"trade_dt": str(D5)}, columns=["symbol", "trade_pr", "trade_dt"])
    assert rows(got) == [("A", 12.25, D5), ("B", 11.5, D5), ("C", 7.5, D5)]
    with pytest.raises(TransformError, match="part-x.parquet has no column trade_size"):
        read(ctx, partitions={"trade_dt": str(D5)}, where="trade_size > 60", columns=["symbol", "trade_pr"])
    with pytest.raises(TransformError, match=r"part-x.parquet has no column trade_size \(other files have it as "
                                             r"int32\), has column venue \(string\) that other files lack"):
        read(ctx, partitions={"trade_dt": str(D5)})


def test_a_file_that_is_not_parquet_is_refused(warehouse):
    """Before: Spark failed building the DataFrame with CANNOT_READ_FILE_FOOTER and a full file URI."""
    ctx, trade = warehouse
    (trade / f"trade_dt={D5}" / "notes.txt").write_text("moved day by hand\n")
    with pytest.raises(TransformError, match=rf"dataset 'trade': file trade_dt={D5}/notes.txt is not a Parquet file"):
        read(ctx, partitions={"trade_dt": str(D5)})


def preflight_ctx(root: Path, written: tuple[str, ...] = ()) -> PreflightContext:
    """What the runner gives read_dataset's preflight over a local storage root (no Spark)."""
    store = LocalStorage(root)
    return PreflightContext(date=D5, step="quotes", log=logging.getLogger("test"), _raw_exists=lambda rel: False,
                            _dataset_exists=store.exists, _dataset_dirs=store.list_dirs,
                            _dataset_folder=store.read_uri, storage_root=store.describe(), written_paths=written)


def test_a_mistyped_path_is_refused_before_spark_with_the_close_dataset_name(tmp_path):
    (tmp_path / "quote").mkdir()
    (tmp_path / "analytics" / "bars_1m").mkdir(parents=True)
    ctx = preflight_ctx(tmp_path, written=("analytics/vwap",))
    with pytest.raises(ParamProblem) as info:
        read_dataset_preflight(ctx, {"path": "quotes"})
    assert info.value.step_key == ("params", "path")
    assert str(info.value) == (f"dataset 'quotes' does not exist under the storage root (local folder {tmp_path}) "
                               "and no step of this pipeline writes it (did you mean 'quote'?)")
    with pytest.raises(ParamProblem, match=r"\(did you mean 'analytics/bars_1m'\?\)$"):
        read_dataset_preflight(ctx, {"path": "analytics/bars_1n"})
    read_dataset_preflight(ctx, {"path": "analytics/vwap"})  # an earlier step of the run writes it: not refused
    read_dataset_preflight(ctx, {"path": "quote/"})


def test_a_column_the_dataset_lacks_is_refused_before_spark_from_one_footer(tmp_path):
    folder = tmp_path / "quote" / "trade_dt=2024-01-05"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"symbol": ["A"], "bid_pr": [1.0], "ask_pr": [1.5]}), folder / "part-0.parquet")
    ctx = preflight_ctx(tmp_path)
    read_dataset_preflight(ctx, {"path": "quote", "columns": ["trade_dt", "SYMBOL", "ask_pr", "`odd name`"]})
    with pytest.raises(ParamProblem) as info:
        read_dataset_preflight(ctx, {"path": "quote", "columns": ["symbol", "ask_price"]})
    assert info.value.step_key == ("params", "columns", 1)
    assert str(info.value) == "'ask_price' is not a column of dataset 'quote' (did you mean 'ask_pr'?)"
    with pytest.raises(ParamProblem, match="'size' is not a column of dataset 'quote'; its columns are: symbol, "
                                           "bid_pr, ask_pr, trade_dt$"):
        read_dataset_preflight(ctx, {"path": "quote", "columns": ["size"]})


def test_a_where_spark_cannot_resolve_names_the_param(warehouse):
    ctx, _ = warehouse
    with pytest.raises(ParamProblem, match=r"^AnalysisException: \[UNRESOLVED_COLUMN") as info:
        read(ctx, where="trade_price > 0")
    assert info.value.step_key == ("params", "where")
