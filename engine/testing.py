"""Running one transform on small DataFrames, for a plugin's own tests, the way a pipeline step calls it.

A plugin package cannot import tickflow's test helpers, and ``TransformContext`` takes private reader
callables: these two functions are the supported way in. ``run_transform`` checks what a spec's step would
be checked for (params against the schema, with its defaults filled in; input names) and what the executor
holds the result to (a pyspark DataFrame, or the declared outputs), without a spec, tracker or storage.

    from engine.testing import run_transform

    def test_blocks(spark):
        trades = spark.createDataFrame([(100,), (20000,)], "trade_size long")
        out = run_transform("block_trades", spark, {"trades": trades}, {"min_size": 10000}, date="2024-01-05")
        assert [r.trade_size for r in out.collect()] == [20000]
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.context import TransformContext
from engine.errors import TickflowError
from engine.executor import check_result
from engine.params import params_problems, with_defaults
from engine.registry import REGISTRY, Registry
from engine.suggest import did_you_mean


class TransformCallError(TickflowError):
    """A test called a transform with a name, params or inputs that a pipeline step would be refused for."""


class NoStorageInTest(TickflowError):
    """A transform asked a test context for a dataset or raw folder, but the test gave no folder for it."""


def _date(value: dt.date | str | None) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise TransformCallError(f"date {value!r} is not a date like 2024-01-05") from None


def _folder_reader(root: str | Path | None, what: str, method: str, argument: str) -> Any:
    """A reader as the runner gives one: the local path of ``rel`` under ``root``, or None when absent.
    Without a root, asking is a NoStorageInTest saying how to give one (not a None a transform would take
    for "no data")."""

    def read(rel_path: str, _partitions: list[str] | None = None) -> str | None:
        if root is None:
            raise NoStorageInTest(f"ctx.{method}({rel_path!r}): this test context has no {what}; pass "
                                  f"{argument}=<a folder> to transform_context() or run_transform()")
        path = Path(root) / rel_path.strip("/")
        return str(path) if path.exists() else None

    return read


def transform_context(spark: Any, *, date: dt.date | str | None = None, step: str = "test",
                      storage_root: str | Path | None = None,
                      raw_root: str | Path | None = None) -> TransformContext:
    """A ``TransformContext`` as a step named ``step`` gets for ``date`` (a date or 'YYYY-MM-DD').

    ``ctx.dataset_uri(rel)`` / ``ctx.raw_uri(rel)`` answer with the path of ``rel`` under ``storage_root`` /
    ``raw_root`` (None when it is not there); without the root they raise NoStorageInTest. ``ctx.log`` is the
    step's logger (``tickflow.step.<step>``); ``ctx.metrics`` holds what the transform recorded.
    """
    return TransformContext(
        spark=spark, date=_date(date), step=step, log=logging.getLogger(f"tickflow.step.{step}"),
        _dataset_reader=_folder_reader(storage_root, "storage root", "dataset_uri", "storage_root"),
        _raw_reader=_folder_reader(raw_root, "raw root", "raw_uri", "raw_root"),
        raw_root=f"local folder {raw_root}" if raw_root is not None else "(no raw root in this test)",
    )


def run_transform(name: str, spark: Any, inputs: Mapping[str, Any], params: Mapping[str, Any] | None = None, *,
                  date: dt.date | str | None = None, step: str | None = None, ctx: TransformContext | None = None,
                  registry: Registry | None = None) -> Any:
    """Call transform ``name`` on ``inputs`` ({input name: pyspark DataFrame}) with ``params``.

    Returns the DataFrame (several declared outputs: {output name: DataFrame}), lazy as the transform left it.
    Raises TransformCallError for an unknown transform, params the schema refuses (every problem, each with
    its key) or wrong input names; StepContractError (engine.executor) when the result breaks the contract.
    Pass ``ctx`` (from ``transform_context``) to look at ``ctx.metrics`` afterwards.
    """
    reg = registry or REGISTRY
    tdef = reg.get(name)
    if tdef is None:  # the built-in and installed transforms; a plugin's own test imports its module first
        reg.discover()
        tdef = reg.get(name)
    if tdef is None:
        raise TransformCallError(f"unknown transform '{name}'{did_you_mean(name, reg.names())}; import the module "
                                 "that defines it before calling run_transform")
    given = dict(params or {})
    problems = [f"params{''.join(f'.{p}' for p in path)}: {message}"
                for path, message in params_problems(tdef.params_schema, given)]
    if tdef.inputs is not None:
        missing = [i for i in tdef.inputs if i not in inputs]
        problems += [f"inputs: missing '{i}'{did_you_mean(i, [k for k in inputs if k not in tdef.inputs])}"
                     for i in missing]
        problems += [f"inputs: '{i}' is not an input of it{did_you_mean(i, tdef.inputs)}"
                     for i in inputs if i not in tdef.inputs]
    from pyspark.sql import DataFrame

    problems += [f"inputs: '{i}' is a {type(df).__module__}.{type(df).__qualname__}, not a pyspark.sql.DataFrame"
                 for i, df in inputs.items() if not isinstance(df, DataFrame)]
    if problems:
        expected = ", ".join(tdef.inputs) if tdef.inputs is not None else "any names"
        raise TransformCallError(f"transform '{name}' (inputs: {expected}): " + "; ".join(problems))
    context = ctx or transform_context(spark, date=date, step=step or name)
    result = check_result(tdef, tdef.func(context, dict(inputs), with_defaults(tdef.params_schema, given)))
    return result if tdef.multi_output else result[tdef.outputs[0]]
