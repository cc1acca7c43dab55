"""What a succeeded step's tracker row says about its run: the partitions it wrote, where, and the raw folders
it read (their stamps). Kept as compact JSON in the row's ``message``, so a later run can tell whether the step's
work still stands (engine.outputs_present, engine.raw_inputs) without anything but the tracker and storage."""

from __future__ import annotations

import json
import logging
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


def written_message(partitions: Mapping[str, list[str]], rows: Mapping[str, int], paths: Mapping[str, str],
                    raw: Mapping[str, str] | None = None, *, definition: str | None = None) -> str:
    """A succeeded step's row message: what it wrote, where (an output path may be templated by date), the
    digest of its definition, and the stamps of the raw folders it read. Stamps that would not fit the row are
    left out (with a warning): a truncated message would lose the partitions too."""
    body: dict[str, Any] = {"partitions": partitions, "rows": rows, "paths": paths}
    if definition:
        body["definition"] = definition
    if raw:
        with_raw = json.dumps({**body, "raw": dict(raw)}, separators=(",", ":"))
        if len(with_raw) <= MESSAGE_MAX:
            return with_raw
        log.warning("the stamps of %d raw folders do not fit the step's tracker row: a later change of those "
                    "files is not noticed (run the date with --force after one)", len(raw))
    return json.dumps(body, separators=(",", ":"))


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
    return text
