"""Data-quality expectations on a step's output, declared in YAML (generic: any DataFrame, any columns).

Row expectations are Spark SQL boolean expressions with an action: ``warn`` (keep and count), ``drop``
(move violating rows to quarantine, reason = the expectation's name) or ``fail`` (fail the step). A NULL
result counts as a violation. Dataset-level checks (row_count, unique, not_null) fail the step unless
``action: warn``. Everything is evaluated with Spark built-ins, in as few actions as possible.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import EXIT_STEP_FAILED, TickflowError
from engine.run_record import ExpectationResult
from engine.spec_items import ItemSpecError, item_problems

KINDS = ("expr", "row_count", "unique", "not_null")
ACTIONS = ("warn", "drop", "fail")
SAMPLE_ROWS = 5
# The runner shows one line of an error, cut at 400 characters with the class name: the message fits in this.
MESSAGE_WIDTH = 370
MIN_ROW_WIDTH = 60  # a row shown narrower than this tells nothing: show fewer rows instead
DETAIL_ROW_WIDTH = 200  # a row in the report's detail of a failed expectation
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYS = {"name", "expr", "action", "row_count", "unique", "not_null", "output", "description"}
REASON_COL = "__tickflow_reason"  # internal column used while splitting


class ExpectationSpecError(ItemSpecError):
    """An expectation item in the YAML is malformed; the message names the item and the key."""


class ExpectationError(TickflowError):
    """An expectation cannot be evaluated on the data (bad expression, unknown column, not boolean)."""


class ExpectationFailed(Exception):
    """A `fail` expectation or a dataset-level check was violated; the step must fail.

    The message is one line (the runner and the report show only an error's first line): every failed
    expectation, its counts and a few violating rows. ``results`` holds the results of every expectation of
    the output, the passed ones too, because the run report needs their counts although the step fails;
    a failed one's detail lists its violating rows. ``failed`` holds the ones that fail the step.
    """

    exit_code = EXIT_STEP_FAILED

    def __init__(self, message: str, results: Sequence[ExpectationResult],
                 failed: Sequence[ExpectationResult] | None = None):
        self.results = list(results)
        self.failed = list(failed) if failed is not None else [r for r in self.results if not r.ok]
        super().__init__(message)


@dataclass(frozen=True)
class Expectation:
    name: str
    kind: str  # expr | row_count | unique | not_null
    action: str  # warn | drop | fail
    expr: str | None = None
    columns: tuple[str, ...] = ()
    min: int | None = None
    max: int | None = None
    output: str | None = None  # which output of a multi-output step (None: the default output)

    @property
    def is_dataset_check(self) -> bool:
        return self.kind != "expr"

    @property
    def description(self) -> str:
        """The check as a human reads it, shown in the report."""
        if self.kind == "expr":
            return str(self.expr)
        if self.kind == "row_count":
            lo = "" if self.min is None else f"{self.min} <= "
            hi = "" if self.max is None else f" <= {self.max}"
            return f"{lo}row_count{hi}"
        return f"{self.kind}({', '.join(self.columns)})"

    @property
    def result_action(self) -> str:
        """The action as recorded: dataset-level checks that fail the step are recorded as 'check'."""
        return "check" if self.is_dataset_check and self.action == "fail" else self.action


# ------------------------------------------------------------------------------------------------ parsing

class _Item:
    """Builds the errors of one item: ``expectations[i] (name): detail``, with the item's index and key."""

    def __init__(self, i: int, name: Any = None):
        self.i = i
        self.where = f"expectations[{i}]" + (f" ({name})" if isinstance(name, str) else "")

    def error(self, detail: str, key: str | None = None) -> ExpectationSpecError:
        return ExpectationSpecError(f"{self.where}: {detail}", index=self.i, key=key, detail=detail)


def _columns(item: _Item, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) and value:
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(c, str) and c for c in value):
        raise item.error(f"'{key}' must be a column name or a non-empty list of column names", key)
    if len(set(value)) != len(value):
        raise item.error(f"'{key}' lists a column twice", key)
    return tuple(value)


def _bound(item: _Item, key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise item.error(f"row_count.{key} must be a non-negative integer, got {value!r}", "row_count")
    return value


def parse_expectation(i: int, item: Any) -> Expectation:
    """One YAML item -> Expectation; ``i`` is its index, used in error messages."""
    if not isinstance(item, Mapping):
        raise _Item(i).error("expected a mapping with 'name' and one of 'expr', 'row_count', 'unique', 'not_null'")
    name = item.get("name")
    at = _Item(i, name)
    if name is None:
        raise at.error("'name' is required: letters, digits and _ (e.g. bid_le_ask)")
    if not isinstance(name, str) or not _NAME.match(name):
        raise at.error(f"'name' must be letters, digits and _ (e.g. bid_le_ask), got {name!r}", "name")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise at.error(f"unknown key(s) {', '.join(unknown)}; expected name, expr, row_count, unique, not_null, "
                       "action, output", unknown[0])
    kinds = [k for k in KINDS if k in item]
    if len(kinds) != 1:
        raise at.error(f"give exactly one of expr, row_count, unique, not_null (got {', '.join(kinds) or 'none'})")
    kind = kinds[0]
    action = item.get("action", "warn" if kind == "expr" else "fail")
    if action not in ACTIONS:
        raise at.error(f"action '{action}' is not one of warn, drop, fail", "action")
    if kind != "expr" and action == "drop":
        raise at.error(f"a dataset-level check ({kind}) cannot drop rows; use warn or fail", "action")
    output = item.get("output")
    if output is not None and (not isinstance(output, str) or not output):
        raise at.error("'output' must name one of the step's outputs", "output")
    if kind == "expr":
        expr = item["expr"]
        if not isinstance(expr, str) or not expr.strip():
            raise at.error("'expr' must be a Spark SQL boolean expression", "expr")
        return Expectation(name=name, kind=kind, action=action, expr=expr.strip(), output=output)
    if kind == "row_count":
        bounds = item["row_count"]
        if not isinstance(bounds, Mapping) or not set(bounds) <= {"min", "max"} or not bounds:
            raise at.error("row_count must be a mapping with 'min' and/or 'max'", "row_count")
        lo, hi = _bound(at, "min", bounds.get("min")), _bound(at, "max", bounds.get("max"))
        if lo is not None and hi is not None and lo > hi:
            raise at.error(f"row_count.min ({lo}) is greater than row_count.max ({hi})", "row_count")
        return Expectation(name=name, kind=kind, action=action, min=lo, max=hi, output=output)
    return Expectation(name=name, kind=kind, action=action, columns=_columns(at, kind, item[kind]),
                       output=output)


def expectation_problems(items: Any) -> tuple[list[tuple[int, Expectation]], list[ItemSpecError]]:
    """Every item of a step's `expectations:` list: the good ones with their index, and an error for each bad
    one (validation reports them all at once, each at its own line, not only the first)."""
    if not isinstance(items, list):
        return [], [ExpectationSpecError("expectations must be a list")]
    return item_problems(items, parse_expectation, lambda exp: exp.name, lambda i, _item, exp, first: _Item(
        i, exp.name).error(f"duplicate name '{exp.name}' (expectations[{first}] has it too); names are unique "
                           "within a step", "name"))


def parse_expectations(items: list[dict]) -> list[Expectation]:
    """Validate a step's `expectations:` list; raises ExpectationSpecError naming the first bad item."""
    if not isinstance(items, list):
        raise ExpectationSpecError("expectations must be a list")
    exps = [parse_expectation(i, item) for i, item in enumerate(items)]
    names = [e.name for e in exps]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ExpectationSpecError(f"expectations: duplicate name(s) {', '.join(dup)}")
    return exps


def for_output(exps: Sequence[Expectation], output: str, default_output: str) -> list[Expectation]:
    """The expectations that apply to ``output`` (those without `output:` apply to the default output)."""
    return [e for e in exps if (e.output or default_output) == output]


# ------------------------------------------------------------------------------------------------ columns

def _condition(df, exp: Expectation):
    """The expectation as a boolean Column, checked against ``df``; errors name the expectation."""
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType

    try:
        col = F.expr(exp.expr)
        dtype = df.select(col.alias("c")).schema["c"].dataType  # analysis only, no job
    except PySparkException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExpectationError(f"expectation '{exp.name}': cannot evaluate {exp.expr!r}: {first}") from None
    if not isinstance(dtype, BooleanType):
        raise ExpectationError(f"expectation '{exp.name}': {exp.expr!r} is {dtype.simpleString()}, "
                               "not a boolean expression")
    return col


def _violated(df, exp: Expectation):
    """True where the row violates the expectation (false or NULL)."""
    from pyspark.sql import functions as F

    return ~F.coalesce(_condition(df, exp), F.lit(False))


def _check_columns(df, exp: Expectation) -> None:
    missing = [c for c in exp.columns if c not in df.columns]
    if missing:
        raise ExpectationError(f"expectation '{exp.name}': column(s) {', '.join(missing)} not in the output "
                               f"(it has: {', '.join(df.columns)})")


def _any_null(exp: Expectation):
    from pyspark.sql import functions as F

    cond = None
    for c in exp.columns:
        piece = F.col(f"`{c}`").isNull()
        cond = piece if cond is None else (cond | piece)
    return cond


# ------------------------------------------------------------------------------------------------ split

def split_rows(df, exps: Sequence[Expectation]):
    """Before writing: (kept, dropped) for the `drop` expectations, or (df, None) when there are none.

    ``dropped`` has the quarantine columns: source_file (from the data when it has that column), line_no
    (null), raw_line (every original column as JSON), reason (the first violated drop expectation's name),
    detail, partition ('B'). The caller adds the quarantine partition column (trade_dt) and writes it as the
    output's own files of that date (engine.writer.begin_quarantine).
    Both frames are lazy; persisting ``df`` first avoids computing it twice.
    """
    from pyspark.sql import functions as F

    drops = [e for e in exps if e.kind == "expr" and e.action == "drop"]
    if not drops:
        return df, None
    reason = None
    detail = None
    for exp in drops:
        bad = _violated(df, exp)
        reason = (F.when(bad, F.lit(exp.name)) if reason is None else reason.when(bad, F.lit(exp.name)))
        text = F.lit(f"expectation '{exp.name}' violated: {exp.expr}")
        detail = F.when(bad, text) if detail is None else detail.when(bad, text)
    marked = df.withColumn(REASON_COL, reason).withColumn(REASON_COL + "_detail", detail)
    kept = marked.where(F.col(REASON_COL).isNull()).drop(REASON_COL, REASON_COL + "_detail")
    originals = [F.col(f"`{c}`") for c in df.columns]
    source = (F.col("source_file").cast("string") if "source_file" in df.columns
              else F.lit(None).cast("string"))
    dropped = marked.where(F.col(REASON_COL).isNotNull()).select(
        source.alias("source_file"),
        F.lit(None).cast("bigint").alias("line_no"),
        F.to_json(F.struct(*originals), {"ignoreNullFields": "false"}).alias("raw_line"),
        F.col(REASON_COL).alias("reason"),
        F.col(REASON_COL + "_detail").alias("detail"),
        F.lit("B").alias("partition"),
    )
    return kept, dropped


def count_dropped(dropped) -> dict[str, int]:
    """{reason: rows} of a `dropped` frame from split_rows, in one small aggregation."""
    if dropped is None:
        return {}
    return {r["reason"]: int(r["n"]) for r in dropped.groupBy("reason").count().withColumnRenamed("count", "n")
            .collect()}


# ------------------------------------------------------------------------------------------------ evaluate

def aggregates(df, exps: Sequence[Expectation]) -> list[Any]:
    """The aggregate Columns behind every expectation except `unique`: the row count (``__n``) and, per
    expectation, its violation counts. They fit one aggregation job, or an Observation on the write itself.
    Errors (unknown column, non-boolean expression) name the expectation."""
    from pyspark.sql import functions as F

    aggs = [F.count(F.lit(1)).alias("__n")]
    for i, exp in enumerate(exps):
        if exp.kind == "expr":
            aggs.append(F.sum(F.when(_violated(df, exp), 1).otherwise(0)).alias(f"__f{i}"))
        elif exp.kind == "not_null":
            _check_columns(df, exp)
            aggs.append(F.sum(F.when(_any_null(exp), 1).otherwise(0)).alias(f"__f{i}"))
            for j, c in enumerate(exp.columns):
                aggs.append(F.sum(F.when(F.col(f"`{c}`").isNull(), 1).otherwise(0)).alias(f"__f{i}_{j}"))
        elif exp.kind == "unique":
            _check_columns(df, exp)
    return aggs


def evaluate(df, exps: Sequence[Expectation], *, dropped_counts: dict[str, int] | None = None,
             observed: Mapping[str, Any] | None = None) -> list[ExpectationResult]:
    """After writing, on the written (staged) data: passed/failed counts for every expectation.

    ``observed`` holds the values of ``aggregates(df, exps)`` when they were already collected while the data
    was written (``df`` is then needed only for unique checks); otherwise one aggregation job computes them.
    Each unique check adds one job. For `drop`
    expectations the written data no longer holds the violators, so ``dropped_counts``
    ({expectation name: rows dropped}) supplies the failed count.
    """
    from pyspark.sql import functions as F

    if not exps:
        return []
    dropped_counts = dropped_counts or {}
    row = dict(observed) if observed is not None else df.agg(*aggregates(df, exps)).collect()[0].asDict()
    n = int(row["__n"])
    results: list[ExpectationResult] = []
    for i, exp in enumerate(exps):
        if exp.kind == "expr":
            failed = int(row[f"__f{i}"] or 0)
            detail = ""
            if exp.action == "drop":
                dropped = int(dropped_counts.get(exp.name, 0))
                detail = f"{dropped:,} row(s) moved to quarantine" if dropped else ""
                passed, failed = n - failed, failed + dropped
            else:
                passed = n - failed
            results.append(ExpectationResult(exp.name, exp.action, exp.description, passed, failed,
                                             failed == 0, detail))
        elif exp.kind == "row_count":
            ok = (exp.min is None or n >= exp.min) and (exp.max is None or n <= exp.max)
            lo = "-" if exp.min is None else f"{exp.min:,}"
            hi = "-" if exp.max is None else f"{exp.max:,}"
            results.append(ExpectationResult(exp.name, exp.result_action, exp.description, int(ok), int(not ok),
                                             ok, f"{n:,} rows; expected [{lo}, {hi}]"))
        elif exp.kind == "not_null":
            failed = int(row[f"__f{i}"] or 0)
            per_col = {c: int(row[f"__f{i}_{j}"] or 0) for j, c in enumerate(exp.columns)}
            detail = ", ".join(f"{c}: {v:,} null" for c, v in per_col.items() if v)
            results.append(ExpectationResult(exp.name, exp.result_action, exp.description, n - failed, failed,
                                             failed == 0, detail))
        else:
            cols = [F.col(f"`{c}`") for c in exp.columns]
            dup = (df.groupBy(*cols).count().where(F.col("count") > 1)
                   .agg(F.count(F.lit(1)).alias("keys"), F.sum("count").alias("rows")).collect()[0])
            keys, rows = int(dup["keys"] or 0), int(dup["rows"] or 0)
            extra = rows - keys  # rows beyond the first of each duplicated key
            detail = f"{keys:,} duplicated key(s) covering {rows:,} rows" if keys else ""
            results.append(ExpectationResult(exp.name, exp.result_action, exp.description, n - extra, extra,
                                             keys == 0, detail))
    return results


# ------------------------------------------------------------------------------------------------ enforce

def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _compact_row(row: Mapping[str, Any], first: Sequence[str], width: int) -> str:
    """``{col=value, ...}`` on one line, the columns the check uses first, cut to ``width`` characters."""
    order = [c for c in first if c in row] + [c for c in row if c not in first]
    # one line even when a value holds line breaks
    fields = [" ".join(f"{c}={_value(row[c])}".split()) for c in order]
    text = "{" + ", ".join(fields) + "}"
    if len(text) <= width:
        return text
    kept: list[str] = []
    for f in fields:  # whole fields while they fit, then "…"
        if len("{" + ", ".join([*kept, f]) + ", …}") > width:
            break
        kept.append(f)
    if kept:
        return "{" + ", ".join(kept) + ", …}"
    return text[: max(width - 2, 1)] + "…}"  # not even the first field fits: cut it


def _fit_rows(rows: Sequence[Mapping[str, Any]], first: Sequence[str], budget: int) -> str:
    """As many rows as fit in ``budget`` characters (at least one), each cut to an equal share of it but never
    below MIN_ROW_WIDTH: a few comparable rows tell more than one long one."""
    width = max(MIN_ROW_WIDTH, budget // len(rows))
    shown = [_compact_row(rows[0], first, width)]
    for row in rows[1:]:
        text = _compact_row(row, first, width)
        if len(" | ".join([*shown, text])) + len(" | …") > budget:
            break
        shown.append(text)
    return " | ".join(shown) + (" | …" if len(shown) < len(rows) else "")


def _mentioned(columns: Sequence[str], expr: str) -> list[str]:
    """The columns an expression names (a word match), to show first: they tell why the row violates."""
    return [c for c in columns
            if re.search(rf"(?<![A-Za-z0-9_]){re.escape(c)}(?![A-Za-z0-9_])", expr, flags=re.IGNORECASE)]


def _samples(df, exp: Expectation) -> tuple[list[dict[str, Any]], list[str]]:
    """A few rows (or keys) that show what is wrong, fetched only on the failure path, and the columns to
    show first."""
    from pyspark.sql import functions as F

    if exp.kind == "expr":
        rows = df.where(_violated(df, exp)).limit(SAMPLE_ROWS).collect()
        first = _mentioned(df.columns, str(exp.expr))
    elif exp.kind == "not_null":
        rows = df.where(_any_null(exp)).limit(SAMPLE_ROWS).collect()
        first = list(exp.columns)
    elif exp.kind == "unique":
        cols = [F.col(f"`{c}`") for c in exp.columns]
        rows = (df.groupBy(*cols).count().where(F.col("count") > 1).orderBy(F.col("count").desc())
                .limit(SAMPLE_ROWS).collect())
        first = list(exp.columns)
    else:
        return [], []
    return [r.asDict() for r in rows], first


def enforce(df, exps: Sequence[Expectation], results: Sequence[ExpectationResult]) -> None:
    """Raise ExpectationFailed when a `fail` expectation or a failing dataset check was violated.

    ``results`` are those of every expectation of the output; the exception carries them all (the failed
    ones with their violating rows in ``detail``), so the report keeps every count of a failed step.
    """
    by_name = {e.name: e for e in exps}
    failing = [(by_name[r.name], r) for r in results
               if not r.ok and r.name in by_name and by_name[r.name].action == "fail"]
    if not failing:
        return
    share = MESSAGE_WIDTH if len(failing) == 1 else (MESSAGE_WIDTH - 40) // len(failing)
    parts: list[str] = []
    updated: dict[str, ExpectationResult] = {}
    for exp, res in failing:
        if exp.kind == "row_count":
            parts.append(f"expectation '{exp.name}' ({exp.description}) failed: {res.detail}")
            updated[exp.name] = res
            continue
        what = "rows" if exp.kind != "unique" else "duplicate rows"
        head = (f"expectation '{exp.name}' ({exp.description}) failed for {res.failed:,} of "
                f"{res.passed + res.failed:,} {what}")
        rows, first = _samples(df, exp)
        label = "; duplicated keys: " if exp.kind == "unique" else "; violating rows: "
        parts.append(head + (label + _fit_rows(rows, first, share - len(head) - len(label)) if rows else ""))
        if rows:
            listed = " | ".join(_compact_row(r, first, DETAIL_ROW_WIDTH) for r in rows)
            detail = "; ".join(d for d in (res.detail, f"{label[2:]}{listed}") if d)
            updated[exp.name] = dataclasses.replace(res, detail=detail)
        else:
            updated[exp.name] = res
    names = ", ".join(f"'{e.name}'" for e, _ in failing)
    message = parts[0] if len(parts) == 1 else f"{len(parts)} expectations failed ({names}): " + " || ".join(parts)
    message = " ".join(message.split())  # one line, also when an expression spans several YAML lines
    raise ExpectationFailed(message, [updated.get(r.name, r) for r in results],
                            [updated[e.name] for e, _ in failing])
