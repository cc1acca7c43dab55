"""Safe YAML loading that remembers the line of every key, so errors can point at ``file:line``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

KeyPath = tuple[str | int, ...]


class SpecLoader(yaml.SafeLoader):
    """The safe loader, reading ``1e-5`` and ``2.5e3`` as numbers.

    PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent, so ``max_bad_share: 1e-5`` (and
    Python's own ``str(1e-05)``) would be text and fail a params schema that asks for a number.
    """


SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load_scalar(text: str) -> Any:
    """One value as a spec would read it (``--var`` values, a rendered template)."""
    return yaml.load(text, Loader=SpecLoader)  # noqa: S506 - a safe loader


def format_path(path: KeyPath) -> str:
    """('steps', 'ma', 'depends_on', 0) -> 'steps.ma.depends_on[0]'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


@dataclass
class LineMap:
    """Key path -> 1-based line number in the source file."""

    lines: dict[KeyPath, int] = field(default_factory=dict)
    duplicates: list[tuple[KeyPath, int]] = field(default_factory=list)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path`` or of its nearest ancestor that has one."""
        p = tuple(path)
        while True:
            if p in self.lines:
                return self.lines[p]
            if not p:
                return None
            p = p[:-1]


class YamlSyntaxError(Exception):
    def __init__(self, message: str, line: int | None):
        self.line = line
        super().__init__(message)


def _walk(node: yaml.Node, path: KeyPath, lm: LineMap) -> None:
    lm.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            child = (*path, key)
            if key in seen:
                lm.duplicates.append((child, key_node.start_mark.line + 1))
            seen.add(key)
            lm.lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, lm)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lm)


# PyYAML contexts that open a construct the parser then looks for the end of: a mistake in one (an unclosed quote,
# a missing ``}``) shows only where the parser gave up, often the end of the file, far below the opening
_OPENED = {"while scanning a quoted scalar": "quoted string", "while parsing a flow mapping": "'{' mapping",
           "while parsing a flow sequence": "'[' list"}
_STARTS = "while scanning a simple key"  # a key without its ':': the key's line is the one to edit


def _at(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def syntax_error(exc: yaml.MarkedYAMLError) -> YamlSyntaxError:
    """The error at the line to edit: the start of an unclosed quote or bracket, with where the parser gave up."""
    problem, context = exc.problem or str(exc), exc.context
    start, gave_up = exc.context_mark, exc.problem_mark
    if start is None or gave_up is None or (start.line, start.column) == (gave_up.line, gave_up.column):
        mark = gave_up or start
        return YamlSyntaxError(f"invalid YAML: {problem}" + (f" ({context})" if context else ""),
                               mark.line + 1 if mark else None)
    opened = _OPENED.get(str(context))
    if opened:
        return YamlSyntaxError(f"invalid YAML: the {opened} opened at {_at(start)} is not closed: {problem} at "
                               f"{_at(gave_up)}, where the parser gave up", start.line + 1)
    return YamlSyntaxError(f"invalid YAML: {problem} at {_at(gave_up)} ({context} that starts at {_at(start)})",
                           (start if context == _STARTS else gave_up).line + 1)


def load_with_lines(text: str) -> tuple[Any, LineMap]:
    """Parse with the safe loader; raise YamlSyntaxError carrying the line of the problem."""
    try:
        node = yaml.compose(text, Loader=SpecLoader)
        data = yaml.load(text, Loader=SpecLoader)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        raise syntax_error(exc) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"invalid YAML: {exc}", None) from exc
    lm = LineMap()
    if node is not None:
        _walk(node, (), lm)
    return data, lm


def is_mapping(value: Any) -> bool:
    return isinstance(value, Mapping)
