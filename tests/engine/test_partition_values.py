from __future__ import annotations

import pytest
from pyspark.sql import types as T

from engine.errors import TransformError
from engine.partition_values import (
    column_kind,
    partition_type_problem,
    refuse_foreign_partition_values,
    top_partition_values,
    value_kind,
)


def test_folder_values_are_typed_as_spark_infers_them() -> None:
    assert [value_kind(v) for v in ("2024-01-05", "2024-13-05", "42", "-1.5e3", "AAPL", "2024-01-05 00%3A00")] == [
        "date", "other", "number", "number", "other", "other"]
    assert column_kind(["2024-01-05", "2024-01-04", "junk"]) == "date"
    assert column_kind(["1", "x"]) == "number"  # a tie goes to the typed reading
    assert column_kind(["__HIVE_DEFAULT_PARTITION__"]) is None
    assert top_partition_values(["trade_dt=2024-01-05", "_temporary", ".x=1", "plain", "a=b=c"]) == {
        "trade_dt": ["2024-01-05"], "a": ["b=c"]}


def test_a_write_of_another_kind_than_the_folders_is_a_problem_and_a_new_dataset_never() -> None:
    dirs = ["trade_dt=2024-01-05"]
    assert partition_type_problem("d", "trade_dt", T.DateType(), dirs) is None
    assert partition_type_problem("d", "trade_dt", T.TimestampType(), []) is None  # nothing to clash with
    assert "is timestamp" in (partition_type_problem("d", "trade_dt", T.TimestampType(), dirs) or "")
    assert "partitioned by numbers" in (partition_type_problem("d", "n", T.StringType(), ["n=1"]) or "")
    assert partition_type_problem("d", "n", T.LongType(), ["n=1"]) is None
    assert partition_type_problem("d", "s", T.DateType(), ["s=AAPL"]) is None  # strings take anything


def test_a_local_dataset_with_a_foreign_folder_is_refused_naming_it(tmp_path) -> None:
    for name in ("trade_dt=2024-01-04", "trade_dt=2024-01-05", "trade_dt=2024-01-05 00%3A00%3A00", "_temporary"):
        (tmp_path / name).mkdir()
    with pytest.raises(TransformError, match=r"dataset 'x' holds partition folder\(s\) whose value is not a date "
                                             r"like the others: trade_dt=2024-01-05 00%3A00%3A00; move them out"):
        refuse_foreign_partition_values("x", str(tmp_path))
    refuse_foreign_partition_values("x", str(tmp_path / "trade_dt=2024-01-04"))  # no partitions below: fine
