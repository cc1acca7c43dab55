"""What a succeeded step's tracker row says about its run: the partitions it wrote, where, and the raw folders
it read (their stamps). Kept as compact JSON in the row's ``message``, so a later run can tell whether the step's
work still stands (engine.outputs_present, engine.raw_inputs) without anything but the tracker and storage."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any

from engine.tracker.base import MESSAGE_MAX

log = logging.getLogger("tickflow.runner")


def message_field(message: str | None, key: str) -> dict[str, Any] | None:
    """The object under ``key`` in a step row's message, or None when the message holds none."""
    try:
        data = json.loads(message or "")
    except ValueError:
        return None
    found = data.get(key) if isinstance(data, dict) else None
    return found if isinstance(found, dict) else None


def written_partitions(message: str | None) -> dict[str, list[str]] | None:
    """What a succeeded step's row says it wrote: {output: [partition, ...]}, or None when it says nothing."""
    return message_field(message, "partitions")


def recorded_definition(message: str | None) -> str | None:
    """The digest of the step's definition when it succeeded (engine.step_definition), or None."""
    try:
        data = json.loads(message or "")
    except ValueError:
        return None
    found = data.get("definition") if isinstance(data, dict) else None
    return found if isinstance(found, str) else None


# recorded by the engine itself, and kept in the message under their own keys
_ENGINE_METRICS = frozenset({"partitions_written"})


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def step_figures(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The counts a step recorded (``ctx.record``) that are numbers, or flat maps of numbers (bad records by
    reason): what anyone reading the tracker, not only the report, should see of a step's run."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if key in _ENGINE_METRICS:
            continue
        if _number(value):
            out[key] = value
        elif isinstance(value, Mapping) and value and all(isinstance(k, str) and _number(v)
                                                          for k, v in value.items()):
            out[key] = dict(value)
    return out


def written_message(partitions: Mapping[str, list[str]], rows: Mapping[str, int], paths: Mapping[str, str],
                    raw: Mapping[str, str] | None = None, *, definition: str | None = None,
                    figures: Mapping[str, Any] | None = None) -> str:
    """A succeeded step's row message: what it wrote, where (an output path may be templated by date), the
    digest of its definition, the stamps of the raw folders it read and the figures it recorded. What would not
    fit the row is left out, figures first, then stamps (with a warning): a truncated message would lose the
    partitions too."""
    body: dict[str, Any] = {"partitions": partitions, "rows": rows, "paths": paths}
    if definition:
        body["definition"] = definition
    extras = [{"raw": dict(raw)}] if raw else []
    if figures:
        extras.append({"figures": dict(figures)})
    while extras:
        text = json.dumps({**body, **{k: v for extra in extras for k, v in extra.items()}}, separators=(",", ":"))
        if len(text) <= MESSAGE_MAX:
            return text
        dropped = extras.pop()
        if "raw" in dropped:
            log.warning("the stamps of %d raw folders do not fit the step's tracker row: a later change of those "
                        "files is not noticed (run the date with --force after one)", len(dropped["raw"]))
    return json.dumps(body, separators=(",", ":"))


def _figure(key: str, value: Any) -> str:
    if isinstance(value, dict):
        return f"{key} " + "{" + ", ".join(f"{k}: {_figure_value(v)}" for k, v in value.items()) + "}"
    return f"{key} {_figure_value(value)}"


def _figure_value(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.6g}"


def readable(message: str | None) -> str | None:
    """A step row's message as a person reads it (``status --steps``): rows written per output and the raw
    folders read, instead of the JSON a later run parses. None when the message is not such a record."""
    try:
        data = json.loads(message or "")
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), dict):
        return None
    from engine.raw_inputs import RawStamp  # raw_inputs reads these messages: imported here, not at the top

    wrote = ", ".join(f"{name} {n:,} row{'' if n == 1 else 's'}" for name, n in data["rows"].items()
                      if isinstance(n, int))
    text = f"wrote {wrote}" if wrote else "wrote nothing"
    raw = data.get("raw")
    if isinstance(raw, dict) and raw:
        stamps = {folder: RawStamp.decode(code) for folder, code in raw.items()}
        text += "; read " + ", ".join(f"{folder} ({stamp.describe()})" if stamp else folder
                                      for folder, stamp in stamps.items())
    figures = data.get("figures")
    if isinstance(figures, dict) and figures:
        text += "; " + ", ".join(_figure(k, v) for k, v in figures.items())
    return text
