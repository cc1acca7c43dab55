"""A dataset belongs to the one pipeline that writes it.

The spec loader refuses a step that overwrites what its own pipeline reads or writes; it cannot see other
pipelines. The tracker can: each succeeded step's row names the paths it wrote (engine.step_message). A run
whose spec would write a dataset that another pipeline's steps wrote is refused before it starts: an analyze
step with ``path: quarantine`` had replaced preprocess's bad records of the date with its own rows, exit 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.spec import PipelineSpec, path_parts, paths_nest
from engine.step_message import message_field
from engine.tracker.base import parse_job_id


def writers(rows: Iterable[Any], *, besides: str) -> dict[tuple[str, ...], tuple[str, str]]:
    """path parts -> (pipeline, step) of each dataset path that steps of pipelines other than ``besides`` wrote,
    according to their tracker rows."""
    found: dict[tuple[str, ...], tuple[str, str]] = {}
    for row in rows:
        key = parse_job_id(row.job_id)
        if key is None or key.step is None or key.pipeline == besides or not row.message:
            continue
        for path in (message_field(row.message, "paths") or {}).values():
            if isinstance(path, str) and path.strip():
                found.setdefault(path_parts(path), (key.pipeline, key.step))
    return found


def foreign_outputs(spec: PipelineSpec, rows: Iterable[Any]) -> list[str]:
    """One problem (``steps.s.outputs.o.path: ...``) per output of ``spec`` that would write into, over or
    inside a dataset another pipeline writes."""
    owned = writers(rows, besides=spec.name)
    problems = []
    for step in spec.steps.values():
        where = f"{spec.file}:{step.line}" if step.line else spec.file
        for oname, out in step.outputs.items():
            parts = path_parts(out.path)
            clash = next(((other, who) for other, who in sorted(owned.items()) if paths_nest(parts, other)), None)
            if clash:
                other, (pipeline, other_step) = clash
                problems.append(
                    f"{where}: steps.{step.name}.outputs.{oname}.path: dataset '{out.path}' would overwrite "
                    f"'{'/'.join(other)}', which pipeline '{pipeline}' writes (step {other_step}); a dataset "
                    f"belongs to the one pipeline that writes it: choose another path")
    return problems
