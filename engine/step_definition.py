"""A digest of what a step computes, kept in its tracker row: a resumed run reuses a step's committed outputs
only while the step is still defined as when it wrote them.

An analyst's usual loop is run, see a later step fail, edit things, run again. Without the digest, a step that
succeeded before the edit was skipped as done although its params, SQL or transform code had changed since, and
the job ended `success` with outputs the spec no longer describes. The digest covers the step's rendered
definition (transform or SQL, params, inputs, outputs, expectations), the source file of its transform's code,
and the digests of the steps it reads from (a changed upstream read changes what the step computed).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.spec import StepSpec


def _plain(value: Any) -> Any:
    """JSON-ready and stable: mappings by sorted key, sequences as lists, anything else by its text."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


@functools.cache
def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return "unreadable"


def code_digest(func: Any) -> str:
    """The digest of the file that defines ``func`` (its module: helpers it calls change with it); '' when the
    code has no file (defined interactively)."""
    try:
        source = inspect.getsourcefile(inspect.unwrap(func))
    except TypeError:
        source = None
    return _file_digest(source) if source else ""


def definition_digest(step: StepSpec, code: str, upstream: Iterable[str]) -> str:
    """16 hex digits naming the step's definition, its code (``code_digest``) and its upstream steps' digests."""
    parts = {
        "kind": step.kind, "sql": step.sql, "params": _plain(step.params),
        "inputs": {name: [ref.step, ref.output, ref.dataset] for name, ref in sorted(step.inputs.items())},
        "outputs": {name: [o.path, list(o.partition_by), o.mode, list(o.replace_partitions)]
                    for name, o in sorted(step.outputs.items())},
        "expectations": _plain(step.expectations), "depends_on": sorted(step.depends_on),
        "code": code, "upstream": sorted(upstream),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
