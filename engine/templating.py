"""Jinja2 rendering of spec values in a sandbox with StrictUndefined.

Each string value is rendered on its own (after YAML parsing), so line numbers stay exact. A value that is
one single expression (``"{{ vars.n }}"``) keeps its result's type: a number, boolean or list stays one (even
``1e-07``, which YAML 1.1 would read back as text), and a text that YAML reads as a number (an INI value under
``config.``, an ``env.`` variable) becomes that number.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import jinja2
import yaml
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment

from engine.dates import previous_trading_day
from engine.yaml_lines import KeyPath, load_scalar

_SINGLE_EXPR = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.S)
_NATIVE = bool | int | float | list


class TemplateProblem(Exception):
    """A value whose template cannot be rendered; ``derived`` when only because a var it uses failed."""

    def __init__(self, path: KeyPath, message: str, *, derived: bool = False):
        self.path = path
        self.derived = derived
        super().__init__(message)


class _FailedVarUsed(jinja2.TemplateRuntimeError):
    """Raised while rendering a value that uses a var whose own template failed."""


def failed_var(name: str) -> jinja2.StrictUndefined:
    """What ``vars.<name>`` is while that var's template failed: using it fails as a *derived* problem, so the
    mistake is reported once, at the var, and not again at every value built from it."""
    return jinja2.StrictUndefined(hint=f"vars.{name} failed to render", name=name, exc=_FailedVarUsed)


# the filters a spec computes other dates with: ``date`` and ``prev_date`` are text, so ``date + 1`` fails
DATE_FILTERS = ("days_before(n)", "days_after(n)", "previous_days(n)")
_DATE_NAMES = ("date", "prev_date")


class FilterArgumentError(ValueError):
    """A date filter given something that is not a whole number of days (often a var, e.g. ``--var n=x``)."""

    def __init__(self, filter_name: str, value: Any):
        self.value = value
        super().__init__(f"{filter_name} needs a whole number of days, got {value!r}")


def _days(filter_name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise FilterArgumentError(filter_name, value) from None


def _shift(day: Any, days: int, filter_name: str = "days_after") -> str:
    return (dt.date.fromisoformat(str(day)) + dt.timedelta(days=_days(filter_name, days))).isoformat()


def _previous_days(day: Any, count: int) -> list[str]:
    """The ``count`` calendar days before ``day``, newest first (for reading a look-back of partitions)."""
    start = dt.date.fromisoformat(str(day))
    return [(start - dt.timedelta(days=n)).isoformat() for n in range(1, _days("previous_days", count) + 1)]


def make_environment() -> SandboxedEnvironment:
    """Filters: ``date | days_before(n)``, ``date | days_after(n)``, ``date | previous_days(n)`` (a list)."""
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters["days_before"] = lambda d, n: _shift(d, -_days("days_before", n), "days_before")
    env.filters["days_after"] = _shift
    env.filters["previous_days"] = _previous_days
    return env


def _parsed(env: SandboxedEnvironment, text: str) -> nodes.Template | None:
    """The template's syntax tree (None: not a template, or one whose syntax error rendering reports)."""
    if "{{" not in text and "{%" not in text:
        return None
    try:
        return env.parse(text)
    except jinja2.TemplateSyntaxError:
        return None


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def var_references(env: SandboxedEnvironment, value: Any) -> set[str]:
    """The vars the templates below ``value`` use (``vars.x``, ``vars['x']``): what a var must be rendered after."""
    found: set[str] = set()
    for text in _strings(value):
        tree = _parsed(env, text)
        if tree is None:
            continue
        for node in tree.find_all(nodes.Getattr):
            if isinstance(node.node, nodes.Name) and node.node.name == "vars":
                found.add(node.attr)
        for item in tree.find_all(nodes.Getitem):
            if (isinstance(item.node, nodes.Name) and item.node.name == "vars" and isinstance(item.arg, nodes.Const)
                    and isinstance(item.arg.value, str)):
                found.add(item.arg.value)
    return found


def _uses_names(env: SandboxedEnvironment, text: str, names: Collection[str]) -> bool:
    tree = _parsed(env, text)
    return tree is not None and any(n.name in names for n in tree.find_all(nodes.Name))


def uses_date(env: SandboxedEnvironment, value: Any) -> bool:
    """Whether a template below ``value`` reads the processing date (``date`` or ``prev_date``)."""
    return any(_uses_names(env, text, _DATE_NAMES) for text in _strings(value))


# Environment variables that hold credentials by name; a spec renders into logs and reports, so it never sees them.
# (``*_KEY`` at the end: AZURE_STORAGE_KEY; a DSN or DATABASE_URL may hold a password; a SAS is a token.)
_SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|_PWD$|SECRET|TOKEN|CREDENTIAL|CONNECTION_STRING|DSN|DATABASE_URL|(?:^|_)SAS(?:_|$)|"
    r"(?:^|_)(?:ACCESS|ACCOUNT|API)_?KEY|_KEY$", re.IGNORECASE)


def public_env(env: Mapping[str, str], secrets: Sequence[str] = ()) -> dict[str, str]:
    """The environment a spec may read as ``env.NAME``: without credentials (by name or by configured value)."""
    hidden = {s for s in secrets if s}
    return {k: v for k, v in env.items() if not _SECRET_NAME.search(k) and v not in hidden}


def build_context(date: dt.date | None, variables: Mapping[str, Any], config_values: Mapping[str, Any],
                  env: Mapping[str, str], holidays: Collection[dt.date] = ()) -> dict[str, Any]:
    """``prev_date`` is the previous trading day: weekends and the configured exchange ``holidays`` skipped."""
    ctx: dict[str, Any] = {"vars": dict(variables), "config": dict(config_values), "env": dict(env)}
    if date is not None:
        ctx["date"] = date.isoformat()
        ctx["prev_date"] = previous_trading_day(date, holidays).isoformat()
    return ctx


def render_value(env: SandboxedEnvironment, value: str, context: Mapping[str, Any], path: KeyPath) -> Any:
    if "{{" not in value and "{%" not in value:
        return value
    try:
        rendered = env.from_string(value).render(context)
    except _FailedVarUsed as exc:
        raise TemplateProblem(path, f"uses a var that failed to render ({exc})", derived=True) from exc
    except jinja2.UndefinedError as exc:
        what = _undefined_name(value, exc.message or "", context) or exc.message
        raise TemplateProblem(path, f"template refers to something undefined: {what}") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(path, f"template syntax error: {exc.message}") from exc
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateProblem(path, f"template not allowed in the sandbox: {exc}") from exc
    except FilterArgumentError as exc:
        raise TemplateProblem(path, f"template failed: {exc}{_vars_holding(env, value, context, exc.value)}") from exc
    except TypeError as exc:  # ``date + 1``: date is text
        hint = (f"; date and prev_date are text (YYYY-MM-DD): compute other dates with the filters "
                f"{', '.join(f'date | {f}' for f in DATE_FILTERS)}" if _uses_names(env, value, _DATE_NAMES) else "")
        raise TemplateProblem(path, f"template failed: {exc}{hint}") from exc
    except Exception as exc:  # a filter raising on bad input, division by zero...
        raise TemplateProblem(path, f"template failed: {exc}") from exc
    single = _SINGLE_EXPR.match(value)
    if single:
        native = _native(env, single.group(1), context)
        if isinstance(native, _NATIVE):
            return native
        try:
            parsed = load_scalar(rendered)
        except yaml.YAMLError:
            return rendered
        if isinstance(parsed, _NATIVE):
            return parsed
    return rendered


def _vars_holding(env: SandboxedEnvironment, template: str, context: Mapping[str, Any], value: Any) -> str:
    """`` from vars.n`` naming the vars the template uses whose value is ``value`` (the mistake to fix)."""
    known = context.get("vars")
    if not isinstance(known, Mapping):
        return ""
    names = [n for n in sorted(var_references(env, template)) if n in known and _same(known[n], value)]
    return f" from {' and '.join(f'vars.{n}' for n in names)}" if names else ""


def _same(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # an Undefined marker compares by raising
        return False


def _undefined_name(template: str, message: str, context: Mapping[str, Any]) -> str | None:
    """A misspelt ``vars.``/``config.``/``env.`` name with the close names (jinja2 only says 'dict object')."""
    missing = re.search(r"has no attribute '([^']+)'", message)
    if not missing:
        return None
    name = missing.group(1)
    for scope in ("vars", "config", "env"):
        known = context.get(scope)
        if isinstance(known, Mapping) and re.search(rf"\b{scope}\.{re.escape(name)}\b", template):
            notes = [f"the spec's vars are: {', '.join(map(str, known)) or 'none'}"] if scope == "vars" else []
            close = difflib.get_close_matches(name, [str(k) for k in known], n=1)
            notes += [f"did you mean {scope}.{close[0]}?"] if close else []
            return f"{scope}.{name}" + (f" ({'; '.join(notes)})" if notes else "")
    return None


def _native(env: SandboxedEnvironment, expression: str, context: Mapping[str, Any]) -> Any:
    """The expression's own value (None when the text is not one expression, e.g. ``{{ a }}-{{ b }}``)."""
    if "{{" in expression or "}}" in expression:
        return None
    try:
        return env.compile_expression(expression, undefined_to_none=False)(**context)
    except Exception:  # rendering the same text succeeded: fall back to typing the rendered text
        return None


def render_tree(env: SandboxedEnvironment, data: Any, context: Mapping[str, Any], path: KeyPath,
                problems: list[TemplateProblem], skip: Callable[[KeyPath], bool] = lambda p: False) -> Any:
    """Render every string below ``data``; collect problems instead of stopping at the first."""
    if skip(path):
        return data
    if isinstance(data, str):
        try:
            return render_value(env, data, context, path)
        except TemplateProblem as exc:
            problems.append(exc)
            return data
    if isinstance(data, Mapping):
        return {k: render_tree(env, v, context, (*path, k), problems, skip) for k, v in data.items()}
    if isinstance(data, list):
        return [render_tree(env, v, context, (*path, i), problems, skip) for i, v in enumerate(data)]
    return data
