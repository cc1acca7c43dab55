"""The session every pipeline runs on: settings that results and the console depend on."""

from __future__ import annotations

import pytest
from pyspark.errors import AnalysisException
from pyspark.sql import functions as F


def test_analysis_errors_do_not_print_pyspark_json_lines(spark, capfd):
    # PySpark logs these errors as JSON on handlers of its own; the runner reports the error itself, once
    with pytest.raises(AnalysisException):
        spark.range(1).select(F.col("no_such_column")).collect()
    with pytest.raises(AnalysisException):
        spark.sql("SELECT no_such_column FROM range(1)").collect()
    err = capfd.readouterr().err
    assert "QueryContextLogger" not in err and '"errorClass"' not in err


def test_timestamps_are_zone_less(spark):
    row = spark.sql("SELECT TIMESTAMP '2024-01-04 09:30:00.123' AS t").schema["t"]
    assert row.dataType.typeName() == "timestamp_ntz"
