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


def test_azure_credential_settings_are_redacted(spark):
    """Spark's default redaction misses fs.azure.account.key.<host>: event logs and the UI would show it."""
    import re

    from engine.spark import redaction_regex

    regex = spark.sparkContext.getConf().get("spark.redaction.regex")
    assert regex == redaction_regex()
    for name in ("fs.azure.account.key.acct01.dfs.core.windows.net",
                 "spark.hadoop.fs.azure.account.key.acct01.dfs.core.windows.net",
                 "fs.azure.sas.fixed.token.acct01.dfs.core.windows.net", "spark.hadoop.fs.s3a.access.key"):
        assert re.search(regex, name), name
    assert not re.search(regex, "fs.azure.account.auth.type.acct01.dfs.core.windows.net")
    assert redaction_regex("(?i)mine") == "(?i)mine|fs[.]azure[.]account[.]key|fs[.]azure[.]sas"  # kept, extended
