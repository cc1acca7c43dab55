"""Spark's own parser over every SQL text of the steps a run computes, before the first of them starts.

A SQL step or an expectation ``expr`` with a syntax error used to fail only when its step ran: after every step
before it had computed and committed its outputs (tens of seconds on a real day, and part of the date rewritten
while the rest is not). The JVM is up by the time steps start anyway; its parser takes well under a millisecond
per text and accepts exactly what the step would, where a parser of our own (or sqlglot's Spark dialect) would
refuse some valid Spark SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine.expectations import parse_expectations
from engine.spec import StepSpec

# Params of builtin transforms that hold a Spark SQL boolean expression.
EXPRESSION_PARAMS: dict[str, tuple[str, ...]] = {"read_dataset": ("where",)}


@dataclass(frozen=True)
class SqlText:
    """One SQL text of a step, and what it is in the spec (for the message)."""

    step: str
    where: str  # "sql", "expectations[1] (bid_le_ask) expr", "params.where"
    text: str
    is_query: bool


def step_texts(step: StepSpec, *, with_expectations: bool) -> list[SqlText]:
    """The SQL texts of ``step``: its query, its expectations' ``expr`` (when its outputs are written) and the
    expression params of builtins."""
    texts = []
    if step.sql is not None:
        texts.append(SqlText(step.name, "sql", step.sql, True))
    for param in EXPRESSION_PARAMS.get(step.transform or "", ()):
        value = step.params.get(param)
        if isinstance(value, str) and value.strip():
            texts.append(SqlText(step.name, f"params.{param}", value, False))
    if with_expectations and step.expectations:
        for i, exp in enumerate(parse_expectations(list(step.expectations))):
            if exp.expr is not None:
                texts.append(SqlText(step.name, f"expectations[{i}] ({exp.name}) expr", exp.expr, False))
    return texts


def parse_error(spark: Any, text: SqlText) -> str | None:
    """Spark's parse error of ``text`` (its first line and position), or None when it parses.

    Only the parser runs: tables, columns and functions are resolved when the step runs, against its inputs.
    A session without the classic JVM gateway (Spark Connect) is not checked here.
    """
    from pyspark.errors import ParseException

    jsession = getattr(spark, "_jsparkSession", None)
    if jsession is None:
        return None
    parser = jsession.sessionState().sqlParser()
    try:
        if text.is_query:
            parser.parsePlan(text.text)
        else:
            parser.parseExpression(text.text)
    except ParseException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"{text.where} is not valid Spark SQL: {first}"
    return None


def syntax_errors(spark: Any, steps: Iterable[StepSpec], writing: set[str]) -> list[tuple[str, str]]:
    """(step, message) for each SQL text that does not parse, in the order of ``steps``; expectations count
    only for the steps in ``writing`` (a feeder of a ``--select`` does not check them)."""
    found = []
    for step in steps:
        for text in step_texts(step, with_expectations=step.name in writing):
            error = parse_error(spark, text)
            if error is not None:
                found.append((step.name, error))
    return found
