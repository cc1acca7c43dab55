"""How the problems found in a spec are collected, located and reported.

Every check of the loader reports through here, so each problem names the file and line to edit and the keys as
written there, and all of them come together: the checks only say what is wrong, not where it sits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import yaml

from engine.errors import SpecError
from engine.suggest import did_you_mean
from engine.yaml_lines import KeyPath, LineMap, format_path, load_scalar


@dataclass
class Problems:
    file: str
    lines: LineMap = field(default_factory=LineMap)
    items: list[tuple[int, str]] = field(default_factory=list)
    # values whose template failed: they keep their raw '{{ ... }}' text, so any later check of them (a type,
    # a pattern) would only report the same mistake a second time, misleadingly
    unrendered: set[KeyPath] = field(default_factory=set)
    # the spec as read (before templating) and the --var values: a value wrong because of a --var says so
    raw: Any = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    # what is allowed but most likely not meant (an unpartitioned output of a dated pipeline): said, not refused
    warnings: list[tuple[int, str]] = field(default_factory=list)

    def is_unrendered(self, path: KeyPath) -> bool:
        return any(path[:len(bad)] == bad for bad in self.unrendered)

    def add(self, path: KeyPath, message: str, line: int | None = None) -> None:
        if self.is_unrendered(path):
            return
        self.items.append(self._located(path, message + self._from_var(path), line))

    def warn(self, path: KeyPath, message: str) -> None:
        """A warning, located and worded as a problem is."""
        self.warnings.append(self._located(path, message, None))

    def warning_lines(self) -> list[str]:
        return [m for _, m in sorted(self.warnings, key=lambda item: item[0])]

    def _located(self, path: KeyPath, message: str, line: int | None) -> tuple[int, str]:
        path = as_written(self.lines, path)
        line = line if line is not None else self.lines.line_of(path)
        where = f"{self.file}:{line}" if line else self.file
        return line or 0, f"{where}: {format_path(path)}: {message}"

    def _from_var(self, path: KeyPath) -> str:
        """`` (the value comes from --var x=...)`` when the template at ``path`` uses a var given with --var:
        the error is then in the command line, not in the line of the spec it names."""
        if not self.overrides:
            return ""
        node = self.raw
        for part in path:
            if isinstance(node, str):
                break
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return ""
        if not isinstance(node, str):
            return ""
        used = [name for name in self.overrides if re.search(rf"\bvars\s*(?:\.\s*{re.escape(str(name))}\b|"
                                                             rf"\[\s*['\"]{re.escape(str(name))}['\"])", node)]
        return "".join(f" (the value comes from --var {name}={self.overrides[name]})" for name in used)

    def raise_if_any(self) -> None:
        if self.items:
            ordered = [m for _, m in sorted(self.items, key=lambda item: item[0])]
            raise SpecError(ordered)


def as_written(lines: LineMap, path: KeyPath) -> KeyPath:
    """``path`` with each mapping key YAML read as a boolean, null or number (``yes:``, ``~:``, ``1:``) given
    as its text in the file, as the line map knows it."""
    out: KeyPath = ()
    for part in path:
        if isinstance(part, str) or (*out, part) in lines.lines:
            out = (*out, part)
            continue
        texts = [key[-1] for key in lines.lines if len(key) == len(out) + 1 and key[:-1] == out
                 and isinstance(key[-1], str) and _same_scalar(key[-1], part)]
        out = (*out, texts[0] if texts else part if isinstance(part, int) and not isinstance(part, bool)
               else str(part))
    return out


def _same_scalar(text: str, value: Any) -> bool:
    try:
        loaded = load_scalar(text)
    except yaml.YAMLError:
        return False
    return type(loaded) is type(value) and loaded == value


def schema_problems(err: jsonschema.ValidationError) -> list[tuple[KeyPath, str]]:
    """Each problem of one schema error: an error about unknown keys names every one of them, at its line."""
    path: KeyPath = tuple(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
        allowed = sorted(err.schema.get("properties", {}))
        extra = [k for k in err.instance if k not in allowed]
        if extra and isinstance(err.schema.get("additionalProperties"), bool):
            expected = ", ".join(allowed) or "nothing"
            return [((*path, key), f"unknown key '{key}'{did_you_mean(str(key), allowed)}; expected one of: "
                     f"{expected}") for key in extra]
    return [_schema_error_path(err)]


def _schema_error_path(err: jsonschema.ValidationError) -> tuple[KeyPath, str]:
    path: KeyPath = tuple(err.absolute_path)
    if err.validator == "required":
        return path, err.message.replace("is a required property", "is required but missing")
    if err.validator == "type" and "propertyNames" in err.relative_schema_path:
        kind = "null" if err.instance is None else type(err.instance).__name__
        return (*path, err.instance), (f"a name YAML reads as {kind} {err.instance!r}, not as text; quote it, and "
                                       f"names must match {err.schema.get('pattern', 'a pattern')}")
    if err.validator == "pattern" and "propertyNames" in err.relative_schema_path:
        return (*path, err.instance), f"invalid name {err.instance!r}: names must match {err.validator_value}"
    if err.validator == "pattern":
        return path, f"{err.instance!r} does not match the pattern {err.validator_value}"
    if err.validator == "propertyNames":
        return path, f"invalid name: {err.message}"
    if err.validator == "enum":
        return path, f"{err.instance!r} is not one of {err.validator_value}"
    if err.validator == "type" and err.instance is None:
        return path, _empty_value(path, err.validator_value)
    if err.validator == "type":
        return path, f"expected {err.validator_value}, got {type(err.instance).__name__} {err.instance!r}"
    return path, err.message


def _empty_value(path: KeyPath, expected: Any) -> str:
    """A key written with no value (YAML reads it as null): a step is most often one left empty while editing."""
    if len(path) == 2 and path[0] == "steps":
        return "the step is empty: a step needs 'transform' (a registered transform) or 'sql'"
    return f"has no value (YAML reads an empty value as null); expected {expected}"
