"""Where in the spec a step's failure comes from: the SQL Spark could not analyse, the expectation it could not
evaluate, the param a transform named. Its line leads the failure as spec errors are led
(``analyze.yaml:31: steps.vwap.sql: AnalysisException: ...``), so the analyst is sent to the line to change."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from engine.error_lines import is_analysis_error
from engine.expectations import ExpectationError
from engine.spec import PipelineSpec, StepSpec
from engine.yaml_lines import KeyPath, YamlSyntaxError, format_path, load_with_lines

_EXPECTATION_NAME = re.compile(r"^expectation '([^']*)'")


def failure_key(step: StepSpec, exc: BaseException, *, in_sql: bool = False) -> KeyPath | None:
    """The part of the step's spec a failure is about, as a key path under the step, or None: the SQL a query
    Spark could not analyse came from (``in_sql``: raised by the query itself), the expectation Spark could not
    evaluate (its message starts with its name), or the param a transform named (``step_key``: read_dataset)."""
    key = getattr(exc, "step_key", None)
    if isinstance(key, tuple):
        return key
    if isinstance(exc, ExpectationError):
        named = _EXPECTATION_NAME.match(str(exc))
        index = next((i for i, e in enumerate(step.expectations) if named and str(e.get("name")) == named[1]), None)
        return ("expectations",) if index is None else ("expectations", index)
    if in_sql and step.sql is not None and is_analysis_error(exc):
        return ("sql",)
    return None


def _key_line(spec: PipelineSpec, step: StepSpec, path: KeyPath) -> int | None:
    """The line of ``path`` in the spec file, read again now (a failure is rare): the step's own line when the file
    cannot be read or has moved the step since it was loaded."""
    try:
        lines = load_with_lines(Path(spec.file).read_text(encoding="utf-8"))[1]
    except (OSError, UnicodeDecodeError, ValueError, YamlSyntaxError, yaml.YAMLError):
        return step.line
    if step.line is not None and lines.lines.get(("steps", step.name)) != step.line:
        return step.line
    return lines.line_of(path) or step.line


def located(spec: PipelineSpec, step: StepSpec, exc: BaseException, error: str, *, in_sql: bool = False) -> str:
    """``error`` led by the spec file, line and key it is about, as spec errors are
    (``analyze.yaml:31: steps.vwap.sql: AnalysisException: ...``); unchanged when it is about no part of the spec."""
    key = failure_key(step, exc, in_sql=in_sql)
    if key is None:
        return error
    path = ("steps", step.name, *key)
    line = _key_line(spec, step, path)
    return f"{spec.file}:{line}: {format_path(path)}: {error}" if line else f"{spec.file}: {format_path(path)}: {error}"
