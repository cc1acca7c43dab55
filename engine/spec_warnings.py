"""What a valid spec most likely does not mean: reported as warnings (``file:line: key.path: why``), the run goes on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.spec import StepSpec
from engine.spec_problems import Problems
from engine.templating import uses_date


def _dated_because(jenv: Any, raw: Mapping[str, Any], rendered: Mapping[str, Any]) -> str | None:
    """Why the spec computes something else for each processing date (None: nothing says it does)."""
    if uses_date(jenv, {k: v for k, v in raw.items() if k not in ("description", "report")}):
        return "its templates use the date"
    if rendered.get("catch_up"):
        return "it catches up date by date"
    if rendered.get("requires"):
        return f"it requires {', '.join(map(str, rendered['requires']))} for the same date"
    return None


def _date_column(jenv: Any, raw: Mapping[str, Any]) -> str:
    """The column the spec's other outputs partition by the date (``replace_partitions: {trade_dt: '{{ date }}'}``);
    ``raw`` is a valid spec as written."""
    for step in raw["steps"].values():
        for out in (step.get("outputs") or {}).values():
            for column, value in (out.get("replace_partitions") or {}).items():
                if uses_date(jenv, value):
                    return str(column)
    return "<date column>"


def warn_unpartitioned(jenv: Any, raw: Mapping[str, Any], rendered: Mapping[str, Any],
                        steps: Mapping[str, StepSpec], problems: Problems) -> None:
    """An output without partition_by in a pipeline run per date is replaced whole by every date's run: after a
    backfill only the last date's rows remain. Allowed (a latest-snapshot dataset), so a warning unless the spec
    states ``mode: overwrite``."""
    why = _dated_because(jenv, raw, rendered)
    if why is None:
        return
    column = _date_column(jenv, raw)
    for step in steps.values():
        raw_outputs = raw["steps"][step.name].get("outputs") or {}
        for oname, out in step.outputs.items():
            if out.partition_by or "mode" in raw_outputs[oname]:
                continue
            problems.warn(("steps", step.name, "outputs", oname),
                          f"no partition_by in a pipeline run per date ({why}): each date's run replaces the whole "
                          f"dataset '{out.path}', and only the last date's rows remain; partition it by the date "
                          f"(partition_by: [{column}], replace_partitions: {{{column}: '{{{{ date }}}}'}}), or state "
                          "mode: overwrite if one dataset of the latest run is meant")
