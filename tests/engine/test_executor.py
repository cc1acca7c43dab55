"""The executor runs a SQL step's text only when it is a query (no Spark: a stand-in session records calls)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.executor import NotAQueryError, run_sql
from engine.spec import StepSpec


class RecordingSpark:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def sql(self, text: str) -> Any:
        self.statements.append(text)
        return "df"


def sql_step(sql: str) -> StepSpec:
    return StepSpec(name="s", transform=None, sql=sql, inputs={}, params={}, outputs={}, depends_on=())


@pytest.mark.parametrize("sql", ["INSERT OVERWRITE DIRECTORY '/x' USING parquet SELECT 1",
                                 "/* x */ CREATE TABLE t AS SELECT 1", "  -- only a comment", "SET a=b"])
def test_a_statement_that_is_not_a_query_never_reaches_spark(sql):
    """The loader refuses these; a caller building a StepSpec itself is covered too."""
    spark = RecordingSpark()
    with pytest.raises(NotAQueryError, match="the SQL of step 's' starts with .*, not with a query keyword"):
        run_sql(spark, sql_step(sql), {})
    assert spark.statements == []


@pytest.mark.parametrize("sql", ["SELECT 1", "-- c\nWITH a AS (SELECT 1) SELECT * FROM a", "(SELECT 1)",
                                 "VALUES (1)", "FROM t SELECT a", "TABLE t"])
def test_a_query_runs(sql):
    spark = RecordingSpark()
    assert run_sql(spark, sql_step(sql), {}) == "df" and spark.statements == [sql]
