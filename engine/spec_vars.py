"""A spec's vars rendered in the order they use each other, whatever their order in the file; vars that use each
other are a cycle, reported as one (a var named before its definition is no mistake)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2

from engine.dag import CycleError, Dag
from engine.templating import TemplateProblem, failed_var, render_tree, var_references


def render_vars(jenv: Any, raw_vars: Mapping[Any, Any], overrides: Mapping[str, Any], base_ctx: Mapping[str, Any],
                 tproblems: list[TemplateProblem]) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """(the vars' values, what templates see as vars): each var rendered after the vars it uses, whatever their
    order in the file; vars that use each other are a cycle, reported once, and are failed markers for the rest."""
    deps = {key: set() if key in overrides else var_references(jenv, value) & set(raw_vars)
            for key, value in raw_vars.items()}
    order, cyclic = _var_order(deps, tproblems)
    seen: dict[Any, Any] = {key: failed_var(str(key)) for key in cyclic}
    values: dict[Any, Any] = dict.fromkeys(cyclic)
    for key in order:
        if key in overrides:
            values[key] = seen[key] = overrides[key]
            continue
        view = {**{k: jinja2.StrictUndefined(name=str(k)) for k in raw_vars}, **seen}  # every var is named
        before = len(tproblems)
        values[key] = seen[key] = render_tree(jenv, raw_vars[key], {**base_ctx, "vars": view}, ("vars", key),
                                              tproblems)
        if len(tproblems) > before:
            seen[key] = failed_var(str(key))
    for key in cyclic:
        values[key] = raw_vars[key]
    return {key: values[key] for key in raw_vars}, {key: seen[key] for key in raw_vars}


def _var_order(deps: Mapping[Any, set[Any]], tproblems: list[TemplateProblem]) -> tuple[list[Any], list[Any]]:
    """(the vars in an order where each comes after those it uses, the vars in cycles); a problem per cycle."""
    remaining = {key: set(uses) for key, uses in deps.items()}
    cyclic: list[Any] = []
    while True:
        try:
            return Dag.build(remaining).order(), cyclic
        except CycleError as exc:
            cycle = _as_references(exc.cycle, list(deps))
            tproblems.append(TemplateProblem(("vars", cycle[0]), _cycle_message(cycle)))
            tproblems += [TemplateProblem(("vars", key), "in a cycle", derived=True) for key in cycle[1:-1]]
            for key in cycle[:-1]:
                cyclic.append(key)
                remaining.pop(key, None)
            for uses in remaining.values():
                uses.difference_update(cycle)


def _as_references(cycle: list[Any], declared: list[Any]) -> list[Any]:
    """graphlib's cycle (each var before the one using it) as 'a uses b uses ... a', from the first declared."""
    members = list(reversed(cycle[:-1]))
    first = min(range(len(members)), key=lambda i: declared.index(members[i]))
    members = members[first:] + members[:first]
    return [*members, members[0]]


def _cycle_message(cycle: list[Any]) -> str:
    names = [f"vars.{key}" for key in cycle[:-1]]
    path = " -> ".join(map(str, cycle))
    if len(names) == 1:
        return f"{names[0]} refers to itself ({path})"
    listed = " and ".join(names) if len(names) == 2 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"{listed} refer to each other ({path})"
