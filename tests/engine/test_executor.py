"""The executor runs a SQL step's text only when it is a query (no Spark: a stand-in session records calls), and
holds a transform to what it declared it returns."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest

from engine.context import TransformContext
from engine.executor import NotAQueryError, StepContractError, TransformRaised, compute_step, run_sql
from engine.registry import Registry, transform
from engine.spec import OutputSpec, StepSpec


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


def run_transform_step(spark: Any, returns: Any, outputs: tuple[str, ...] = ("out",),
                       spec_outputs: tuple[str, ...] = ()) -> dict[str, Any]:
    """Runs a step of a transform returning ``returns(spark)`` and declaring ``outputs``."""
    reg = Registry()
    transform("t_x", description="x", inputs=[], outputs=outputs, registry=reg)(
        lambda ctx, inputs, params: returns(ctx.spark))
    step = StepSpec(name="mine", transform="t_x", sql=None, inputs={}, params={}, depends_on=(),
                    outputs={o: OutputSpec(o, f"p/{o}") for o in spec_outputs}, declared_outputs=outputs)
    ctx = TransformContext(spark=spark, date=dt.date(2024, 1, 5), step="mine", log=logging.getLogger("t"),
                           _dataset_reader=lambda *_a: None, _raw_reader=lambda _r: None)
    return compute_step(step, {}, ctx, reg)


def test_a_pandas_frame_is_named_by_its_full_type(spark):
    """`must return one DataFrame, got DataFrame` contradicted itself."""
    with pytest.raises(StepContractError, match=r"^transform 't_x' must return one pyspark\.sql\.DataFrame, got "
                                                r"pandas\.core\.frame\.DataFrame$"):
        run_transform_step(spark, lambda s: s.range(2).toPandas())
    with pytest.raises(StepContractError, match=r"must return one pyspark\.sql\.DataFrame, got None \(did the "
                                               r"function forget to return its result\?\)$"):
        run_transform_step(spark, lambda s: None)


def test_a_single_output_is_named_by_the_spec(spark):
    outs = run_transform_step(spark, lambda s: s.range(2), spec_outputs=("anything",))
    assert list(outs) == ["anything"] and outs["anything"].count() == 2
    assert list(run_transform_step(spark, lambda s: s.range(2))) == ["out"]  # in memory: the declared name


def test_an_undeclared_output_key_is_an_error(spark):
    """A typo'd key next to the right ones was dropped without a word."""
    with pytest.raises(StepContractError, match="^transform 't_x' returned output\\(s\\) huge it does not declare; "
                                                "its outputs are: small, big$"):
        run_transform_step(spark, lambda s: {"small": s.range(1), "big": s.range(2), "huge": s.range(3)},
                           outputs=("small", "big"))


def test_each_value_of_a_multi_output_dict_must_be_a_spark_dataframe(spark):
    with pytest.raises(StepContractError, match=r"must return a pyspark\.sql\.DataFrame for each output; got "
                                                r"big \(pandas\.core\.frame\.DataFrame\)$"):
        run_transform_step(spark, lambda s: {"small": s.range(1), "big": s.range(2).toPandas()},
                           outputs=("small", "big"))
    outs = run_transform_step(spark, lambda s: {"big": s.range(2), "small": s.range(1)}, outputs=("small", "big"))
    assert {k: v.count() for k, v in outs.items()} == {"small": 1, "big": 2}


def failing_step(func: Any, inputs: dict[str, Any]) -> str:
    """The message compute_step raises for a transform ``func`` (no Spark: it fails before using any)."""
    reg = Registry()
    transform("t_fails", description="x", registry=reg)(func)
    step = StepSpec(name="mine", transform="t_fails", sql=None, inputs={}, params={}, outputs={}, depends_on=())
    ctx = TransformContext(spark=None, date=None, step="mine", log=logging.getLogger("t"),
                           _dataset_reader=lambda *_a: None, _raw_reader=lambda _r: None)
    with pytest.raises(TransformRaised) as info:
        compute_step(step, inputs, ctx, reg)
    return str(info.value)


def test_an_error_raised_in_a_transform_names_the_plugin_line_that_raised_it():
    """Only the log had the trace: the line now ends with the innermost frame inside the plugin's own files (here
    the test's module), not json's, which raised."""
    import json

    def parses(ctx, inputs, params):
        return json.loads("{")

    line = parses.__code__.co_firstlineno + 1
    assert failing_step(parses, {}).startswith("JSONDecodeError: Expecting property name")
    assert failing_step(parses, {}).endswith(f" at {__file__}:{line}")


def test_an_unknown_input_name_says_which_inputs_the_step_has():
    def wrong_input(ctx, inputs, params):
        return inputs["trade"]

    line = wrong_input.__code__.co_firstlineno + 1
    assert failing_step(wrong_input, {"trades": "df", "quotes": "df"}) == (
        f"KeyError: 'trade' at {__file__}:{line}: step 'mine' has no input 'trade' (did you mean 'trades'?); "
        "its inputs: trades, quotes")
