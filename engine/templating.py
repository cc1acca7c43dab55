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


def _shift(day: Any, days: int) -> str:
    return (dt.date.fromisoformat(str(day)) + dt.timedelta(days=int(days))).isoformat()


def _previous_days(day: Any, count: int) -> list[str]:
    """The ``count`` calendar days before ``day``, newest first (for reading a look-back of partitions)."""
    start = dt.date.fromisoformat(str(day))
    return [(start - dt.timedelta(days=n)).isoformat() for n in range(1, int(count) + 1)]


def make_environment() -> SandboxedEnvironment:
    """Filters: ``date | days_before(n)``, ``date | days_after(n)``, ``date | previous_days(n)`` (a list)."""
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters["days_before"] = lambda d, n: _shift(d, -int(n))
    env.filters["days_after"] = _shift
    env.filters["previous_days"] = _previous_days
    return env


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
