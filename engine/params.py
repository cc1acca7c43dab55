"""Validation of a transform's params against its JSON Schema, with schema defaults filled in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema

from engine.yaml_lines import KeyPath


def params_problems(schema: Mapping[str, Any], params: Mapping[str, Any]) -> list[tuple[KeyPath, str]]:
    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    out: list[tuple[KeyPath, str]] = []
    for err in validator_cls(schema).iter_errors(dict(params)):
        path: KeyPath = tuple(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
            allowed = sorted(err.schema.get("properties", {}))
            for key in err.instance:
                if key not in allowed:
                    out.append(((*path, key), f"unknown parameter '{key}'; expected one of: "
                                f"{', '.join(allowed) or 'none'}"))
            continue
        if err.validator == "required":
            out.append((path, err.message.replace("is a required property", "is a required parameter")))
            continue
        expected = err.schema.get("description")
        hint = f" (expected: {expected})" if expected else ""
        out.append((path, f"{err.message}{hint}"))
    return out


def with_defaults(schema: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level ``default`` values of the schema's properties, overridden by the given params."""
    out = {k: v["default"] for k, v in (schema.get("properties") or {}).items()
           if isinstance(v, Mapping) and "default" in v}
    out.update(params)
    return out
