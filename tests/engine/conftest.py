"""Fixtures for engine tests: writing specs and test transform modules into temp folders."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

TEST_TRANSFORMS = '''
import threading

from engine.registry import transform
from engine.errors import TransformError

BARRIERS = {}  # name -> threading.Barrier, set by a test before the run


@transform("t_meet", description="Rows 0..n-1 once every party of barrier `barrier` arrived; fails after "
           "the meeting when `fail` is true.", inputs=[],
           params_schema={"type": "object", "required": ["barrier"],
                          "properties": {"barrier": {"type": "string"}, "n": {"type": "integer", "default": 4},
                                         "fail": {"type": "boolean", "default": False}}})
def t_meet(ctx, inputs, params):
    from pyspark.sql import functions as F
    BARRIERS[params["barrier"]].wait()  # raises BrokenBarrierError when the other party never comes
    if params["fail"]:
        raise TransformError("deliberate failure after meeting the other step")
    return ctx.spark.range(params["n"]).withColumn("day", F.lit(ctx.date.isoformat()).cast("date"))

NUMBERS_SCHEMA = {"type": "object", "additionalProperties": False,
                  "properties": {"n": {"type": "integer", "minimum": 0, "default": 10,
                                       "description": "how many rows"},
                                 "day": {"type": "string"}}}


@transform("t_numbers", description="Rows 0..n-1 with a day column.", params_schema=NUMBERS_SCHEMA, inputs=[])
def t_numbers(ctx, inputs, params):
    from pyspark.sql import functions as F
    day = params.get("day") or ctx.date.isoformat()
    return ctx.spark.range(params["n"]).withColumn("day", F.lit(day).cast("date"))


@transform("t_split", description="Even and odd rows.", inputs=["df"], outputs=["even", "odd"])
def t_split(ctx, inputs, params):
    df = inputs["df"]
    return {"even": df.where("id % 2 = 0"), "odd": df.where("id % 2 = 1")}


@transform("t_counted", description="Rows 0..n-1; appends a line to `log` each time it is computed.",
           params_schema={"type": "object", "required": ["log"], "properties": {"log": {"type": "string"},
                          "n": {"type": "integer", "default": 6}}}, inputs=[])
def t_counted(ctx, inputs, params):
    from pyspark.sql import functions as F
    with open(params["log"], "a") as fh:
        fh.write(ctx.step + "\\n")
    return ctx.spark.range(params["n"]).withColumn("day", F.lit(ctx.date.isoformat()).cast("date"))


@transform("t_raw_lines", description="The lines of raw folder `folder`; appends to `log` each time it is computed.",
           params_schema={"type": "object", "required": ["folder", "log"],
                          "properties": {"folder": {"type": "string"}, "log": {"type": "string"}}}, inputs=[])
def t_raw_lines(ctx, inputs, params):
    from pyspark.sql import functions as F
    with open(params["log"], "a") as fh:
        fh.write(ctx.step + "\\n")
    uri = ctx.raw_uri(params["folder"])
    return ctx.spark.read.text(uri).withColumn("day", F.lit(ctx.date.isoformat()).cast("date"))


@transform("t_fail", description="Always fails.", inputs=["df"])
def t_fail(ctx, inputs, params):
    raise TransformError("deliberate failure for the test")


def _needs_marker(ctx, params):
    if not ctx.raw_exists(params["marker"]):
        raise TransformError(f"{ctx.date}: no {params['marker']} under {ctx.raw_root}")


@transform("t_needs_marker", description="Rows of its input once raw file `marker` exists (checked before Spark).",
           params_schema={"type": "object", "required": ["marker"], "properties": {"marker": {"type": "string"}}},
           inputs=["df"], preflight=_needs_marker)
def t_needs_marker(ctx, inputs, params):
    return inputs["df"]


@transform("t_spark_fail", description="Fails inside Spark.", inputs=["df"])
def t_spark_fail(ctx, inputs, params):
    return inputs["df"].selectExpr("no_such_column + 1 AS x")
'''


@pytest.fixture(scope="session")
def install_module(tmp_path_factory):
    """Makes a module importable by name (as a spec's `modules:` would name it) from its source text."""
    def install(name: str, source: str) -> str:
        folder = tmp_path_factory.mktemp(name)
        (folder / f"{name}.py").write_text(source)
        sys.path.insert(0, str(folder))
        return name

    return install


@pytest.fixture(scope="session")
def test_transforms_module(install_module) -> str:
    """A module of test transforms."""
    return install_module("tf_test_transforms", TEST_TRANSFORMS)


@pytest.fixture
def write_spec(tmp_path):
    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write
