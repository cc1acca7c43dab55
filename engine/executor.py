"""Computes one step's DataFrames (lazily) from its inputs: a registered transform or inline SQL."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from engine.context import TransformContext
from engine.errors import TransformError
from engine.registry import Registry, TransformDef
from engine.spec import StepSpec
from engine.sql_text import QUERY_KEYWORDS, first_sql_keyword


class StepContractError(TransformError):
    """The transform returned something other than what it declared."""


class NotAQueryError(StepContractError):
    """A SQL step's text is not a query: ``spark.sql`` would run the statement (a write, a DDL) at once."""


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
    outs = check_result(tdef, tdef.func(ctx, dict(inputs), dict(step.params)))
    if tdef.multi_output:
        return outs
    # a single output is named by the spec (any key), or the step's default when it writes none
    return {step.default_output(): next(iter(outs.values()))}
