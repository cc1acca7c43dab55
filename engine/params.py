"""Validation of a transform's params against its JSON Schema, with schema defaults filled in.

A problem says what is wrong with the value and what the schema expects (its type, pattern, bounds, allowed
values...). A schema's ``description`` says what a parameter is for, not what it must look like, so it is
only ever added as a labelled hint, never as the expectation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema

from engine.suggest import did_you_mean
from engine.yaml_lines import KeyPath

_TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
               "array": "a list", "object": "a mapping", "null": "null"}
_UNDESCRIBED = ("$ref", "allOf", "not", "if", "dependentSchemas", "prefixItems", "contains")


def _kind(value: Any) -> str:
    """A YAML author's name for the type of ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, Sequence):
        return "a list"
    return type(value).__name__


def _bounds(schema: Mapping[str, Any]) -> str:
    """``>= 0``, ``from 1 to 100``, ``> 0 and < 1``: the numeric bounds of a schema ('' when it has none)."""
    lo, hi = schema.get("minimum"), schema.get("maximum")
    xlo, xhi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if lo is not None and hi is not None and xlo is None and xhi is None:
        return f"from {lo} to {hi}"
    parts = [f"{op} {v}" for op, v in ((">=", lo), (">", xlo), ("<=", hi), ("<", xhi)) if v is not None]
    return " and ".join(parts)


def _sized(text: str, noun: str, unit: str, lo: int | None, hi: int | None) -> str:
    """``a non-empty list``, ``a string of 2 to 8 characters``, ``a list of at least 3 items``."""
    if lo == 1 and hi is None:
        return f"a non-empty {noun}"
    if hi is not None:
        return f"{text} of {lo or 0} to {hi} {unit}"
    return f"{text} of at least {lo} {unit}" if lo else text


def describe_schema(schema: Any) -> str | None:
    """What a value must look like, in words, from the schema's own keywords (None: too complex to say)."""
    if schema is True or schema == {}:
        return "any value"
    if not isinstance(schema, Mapping) or any(k in schema for k in _UNDESCRIBED):
        return None
    if "const" in schema:
        return f"exactly {schema['const']!r}"
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return _alternatives([describe_schema(s) for s in schema[key]])
    types = schema.get("type")
    names = [types] if isinstance(types, str) else list(types or [])
    if not names:
        names = (["string"] if any(k in schema for k in ("pattern", "minLength", "maxLength", "format")) else
                 ["array"] if any(k in schema for k in ("items", "minItems", "maxItems", "uniqueItems")) else
                 ["number"] if any(k in schema for k in ("minimum", "maximum", "multipleOf")) else [])
        if not names:
            return "a mapping" if "properties" in schema else None
    if len(names) > 1:
        return _alternatives([describe_schema({**schema, "type": n}) for n in names])
    name = names[0]
    text = _TYPE_NAMES.get(name, str(name))
    if name in ("integer", "number"):
        bounds = _bounds(schema)
        text += f" {bounds}" if bounds else ""
        if "multipleOf" in schema:
            text += f", a multiple of {schema['multipleOf']}"
    elif name == "string":
        text = _sized(text, "string", "characters", schema.get("minLength"), schema.get("maxLength"))
        if "format" in schema:
            text += f" in {schema['format']} format"
        if "pattern" in schema:
            text += f" matching the pattern {schema['pattern']}"
    elif name == "array":
        text = _sized(text, "list", "items", schema.get("minItems"), schema.get("maxItems"))
        if schema.get("uniqueItems"):
            text += " without repeated items"
        if isinstance(schema.get("items"), Mapping) and schema["items"]:
            item = describe_schema(schema["items"])
            if item is None:
                return None
            text += f", each item {item}"
    return text


def _alternatives(forms: list[str | None]) -> str | None:
    """'a string or a number'; alternatives that have their own commas or 'or's are set apart by ', or '."""
    if not forms or any(f is None for f in forms):
        return None
    texts = [str(f) for f in forms]
    return (", or " if any("," in f or " or " in f for f in texts) else " or ").join(texts)


def _what_is_wrong(err: jsonschema.ValidationError) -> str:
    """The value and what is wrong with it, without the expectation (which comes from the whole schema)."""
    value, rule = err.instance, err.validator_value
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    wrong = {  # the expectation follows, from the schema: these only say what is wrong
        "type": f"{shown} is {_kind(value)}",
        "pattern": f"{shown} does not match",
        "enum": f"{shown} is not one of the allowed values",
        "const": f"{shown} is not the allowed value",
        "minimum": f"{shown} is below the minimum",
        "exclusiveMinimum": f"{shown} is too small",
        "maximum": f"{shown} is above the maximum",
        "exclusiveMaximum": f"{shown} is too large",
        "multipleOf": f"{shown} is not a multiple of {rule}",
        "minLength": f"{shown} is too short",
        "maxLength": f"{shown} is too long",
        "minItems": f"{shown} has too few items",
        "maxItems": f"{shown} has too many items",
        "uniqueItems": f"{shown} repeats an item",
        "format": f"{shown} is not in {rule} format",
        "anyOf": f"{shown} matches none of the allowed forms",
        "oneOf": f"{shown} does not match exactly one of the allowed forms",
    }
    return wrong.get(str(err.validator), err.message)


def _hint(root: Mapping[str, Any], err: jsonschema.ValidationError, path: KeyPath) -> str:
    """The description of the failing value, or of the parameter it belongs to, labelled as a hint."""
    description = err.schema.get("description") if isinstance(err.schema, Mapping) else None
    about = path
    if not description and path and isinstance(path[0], str):
        prop = (root.get("properties") or {}).get(path[0])
        description = prop.get("description") if isinstance(prop, Mapping) else None
        about = path[:1]
    if not isinstance(description, str) or not description.strip():
        return ""
    name = ".".join(str(p) for p in about) or "params"
    return f" (hint, from the description of '{name}': {description.strip()})"


def params_problems(schema: Mapping[str, Any], params: Mapping[str, Any]) -> list[tuple[KeyPath, str]]:
    """Every way ``params`` fails ``schema``: (path inside params, what is wrong; expected what)."""
    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    out: list[tuple[KeyPath, str]] = []
    for err in validator_cls(schema).iter_errors(dict(params)):
        path: KeyPath = tuple(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
            allowed = sorted(err.schema.get("properties", {}))
            for key in err.instance:
                if key not in allowed:  # a key of a nested mapping (e.g. a list item) is not a parameter
                    what = "key" if path else "parameter"
                    out.append(((*path, key), f"unknown {what} '{key}'{did_you_mean(str(key), allowed)}; "
                                f"expected one of: {', '.join(allowed) or 'none'}"))
            continue
        if err.validator == "required":
            out.append((path, err.message.replace("is a required property", "is a required parameter")))
            continue
        expected = describe_schema(err.schema)
        message = _what_is_wrong(err) + (f"; expected {expected}" if expected else "")
        out.append((path, message + _hint(schema, err, path)))
    return out


def with_defaults(schema: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level ``default`` values of the schema's properties, overridden by the given params."""
    out = {k: v["default"] for k, v in (schema.get("properties") or {}).items()
           if isinstance(v, Mapping) and "default" in v}
    out.update(params)
    return out
