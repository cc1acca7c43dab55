"""Computes one step's DataFrames (lazily) from its inputs: a registered transform or inline SQL."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from engine.context import TransformContext
from engine.error_lines import essential_line
from engine.errors import TickflowError, TransformError
from engine.registry import Registry, TransformDef, inside, module_files
from engine.spec import StepSpec
from engine.sql_text import QUERY_KEYWORDS, first_sql_keyword
from engine.suggest import did_you_mean


class StepContractError(TransformError):
    """The transform returned something other than what it declared."""


class NotAQueryError(StepContractError):
    """A SQL step's text is not a query: ``spark.sql`` would run the statement (a write, a DDL) at once."""


class TransformRaised(TransformError):
    """A transform's own code raised: its one line names the error and the plugin's line that raised it (the
    trace is only in the log), e.g. ``KeyError: 'trade' at /plugins/my/transforms.py:74``."""


class UnknownInput(KeyError):
    """``inputs[name]`` for a name the step does not have (raised by StepInputs)."""


class StepInputs(dict[str, Any]):
    """A transform's ``inputs``: a missing name raises UnknownInput (a KeyError), which the failure line
    explains with the step's input names."""

    def __missing__(self, key: Any) -> Any:
        raise UnknownInput(key)


# Temp views are session-wide: two SQL steps running at once could bind each other's inputs by name.
_VIEWS_LOCK = threading.Lock()


def run_sql(spark: Any, step: StepSpec, inputs: Mapping[str, Any]) -> Any:
    """Each input is a temp view named after the input; views are resolved when the plan is built, so
    the returned DataFrame keeps its inputs whatever views later steps create. A text that does not start
    like a query is refused before Spark sees it (the loader checks it fully; this covers other callers)."""
    keyword = first_sql_keyword(step.sql or "")
    if keyword not in QUERY_KEYWORDS:
        raise NotAQueryError(f"the SQL of step '{step.name}' starts with {keyword or 'nothing'}, not with a query "
                             f"keyword ({', '.join(QUERY_KEYWORDS)}); a SQL step must be one query")
    with _VIEWS_LOCK:
        for name, df in inputs.items():
            df.createOrReplaceTempView(name)
        return spark.sql(step.sql)


def _type_name(value: Any) -> str:
    """``pandas.core.frame.DataFrame``: a bare ``DataFrame`` would read as the expected type."""
    if value is None:
        return "None (did the function forget to return its result?)"
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _is_dataframe(value: Any) -> bool:
    from pyspark.sql import DataFrame

    return isinstance(value, DataFrame)


def check_result(tdef: TransformDef, result: Any) -> dict[str, Any]:
    """{declared output name: DataFrame} from what the transform returned, or StepContractError saying how
    the result breaks the contract (a pandas frame, a dict for a single output, undeclared or missing keys)."""
    if tdef.multi_output:
        if not isinstance(result, Mapping):
            raise StepContractError(f"transform '{tdef.name}' must return a dict with {', '.join(tdef.outputs)} "
                                    f"(each a pyspark.sql.DataFrame), got {_type_name(result)}")
        missing = [o for o in tdef.outputs if o not in result]
        if missing:
            raise StepContractError(f"transform '{tdef.name}' did not return output(s) {', '.join(missing)}")
        extra = [str(k) for k in result if k not in tdef.outputs]
        if extra:  # a typo'd key next to the right ones would be dropped without a word
            raise StepContractError(f"transform '{tdef.name}' returned output(s) {', '.join(extra)} it does not "
                                    f"declare; its outputs are: {', '.join(tdef.outputs)}")
        wrong = [f"{o} ({_type_name(result[o])})" for o in tdef.outputs if not _is_dataframe(result[o])]
        if wrong:
            raise StepContractError(f"transform '{tdef.name}' must return a pyspark.sql.DataFrame for each output; "
                                    f"got {', '.join(wrong)}")
        return {o: result[o] for o in tdef.outputs}
    if not _is_dataframe(result):
        raise StepContractError(f"transform '{tdef.name}' must return one pyspark.sql.DataFrame, "
                                f"got {_type_name(result)}")
    return {tdef.outputs[0]: result}


def compute_step(step: StepSpec, inputs: Mapping[str, Any], ctx: TransformContext,
                 registry: Registry) -> dict[str, Any]:
    """Returns {output name: DataFrame} covering every declared output of the step."""
    if step.sql is not None:
        return {step.default_output(): run_sql(ctx.spark, step, inputs)}
    tdef = registry.get(step.transform or "")
    if tdef is None:  # validated earlier; kept for safety when the registry changed
        raise StepContractError(f"transform '{step.transform}' is not registered")
    given = StepInputs(inputs)
    try:
        result = tdef.func(ctx, given, dict(step.params))
    except (TransformError, TickflowError):
        raise  # written for the user (or the engine's own): shown as it is
    except Exception as exc:
        where = raised_at(exc, tdef.func)
        if where is None:
            raise
        raise TransformRaised(_located_line(exc, where, step, given)) from exc
    outs = check_result(tdef, result)
    if tdef.multi_output:
        return outs
    # a single output is named by the spec (any key), or the step's default when it writes none
    return {step.default_output(): next(iter(outs.values()))}


LINE_WIDTH = 400  # error_lines.essential_line's cut: the location must survive it


def _own_places(func: Callable[..., Any]) -> list[Path]:
    """The files of the plugin ``func`` comes from: its top-level package's folders, or its one module file.
    The engine's own transforms have none: a line of the engine tells the spec's author nothing."""
    return [] if func.__module__.split(".")[0] == "engine" else module_files(func.__module__)


def raised_at(exc: BaseException, func: Callable[..., Any]) -> str | None:
    """``file:line`` of the innermost frame of ``exc``'s traceback inside the plugin of ``func`` (not the
    engine, not pyspark, which it called), or None when no frame is."""
    places = _own_places(func)
    if not places:
        return None
    mine = [f for f in traceback.extract_tb(exc.__traceback__) if inside(f.filename, places)]
    return f"{mine[-1].filename}:{mine[-1].lineno}" if mine else None


def _located_line(exc: Exception, where: str, step: StepSpec, given: StepInputs) -> str:
    """The error's line with `` at file:line`` (cut before it, not after, when too long); an unknown input name
    also says which inputs the step has."""
    if isinstance(exc, UnknownInput):
        key = exc.args[0] if exc.args else None
        names = ", ".join(given) or "none"
        return (f"KeyError: {key!r} at {where}: step '{step.name}' has no input {key!r}"
                f"{did_you_mean(str(key), given)}; its inputs: {names}")
    line = essential_line(exc)
    room = LINE_WIDTH - len(where) - 4
    if len(line) > room:
        line = line[:room - 3] + "..."
    return f"{line} at {where}"
