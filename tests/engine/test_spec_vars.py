"""A spec's vars (engine.spec_vars): each rendered after the vars it uses, whatever their order in the file; an
overridden var is taken as given; vars that use each other are one cycle, reported once."""

from __future__ import annotations

from engine.spec_loader import parse_var_overrides
from engine.spec_vars import render_vars
from engine.templating import make_environment
from tests.engine.spec_helpers import VARS, load, problems_of


def test_vars_that_refer_to_each_other_are_a_cycle_reported_once(write_spec):
    path = write_spec("""
pipeline: demo
vars:
  short_window: 5 minutes
  big_size: "{{ vars.other }}"
  other: "{{ vars.big_size }}"
  own: "{{ vars.own }}"
  uses_cycle: "{{ vars.other }}-x"
steps:
  a: {sql: "SELECT {{ vars.big_size }} AS x, '{{ vars.uses_cycle }}' AS y"}
""")
    assert problems_of(path) == [
        f"{path}:4: vars.big_size: vars.big_size and vars.other refer to each other (big_size -> other -> big_size)",
        f"{path}:6: vars.own: vars.own refers to itself (own -> own)"]


def test_a_var_may_use_a_var_declared_after_it(write_spec):
    spec = load(write_spec('pipeline: demo\nvars:\n  start: "{{ date | days_before(vars.lookback) }}"\n'
                           '  lookback: 3\nsteps:\n  a: {sql: "SELECT \'{{ vars.start }}\' AS d"}\n'))
    assert spec.variables == {"start": "2024-01-02", "lookback": 3}
    assert list(spec.variables) == ["start", "lookback"]  # in the file's order


def test_an_overridden_var_reaches_the_vars_built_from_it(write_spec, test_transforms_module):
    path = write_spec(VARS.format(mod=test_transforms_module))
    assert load(path).steps["nums"].params["n"] == 8
    assert load(path, var_overrides=parse_var_overrides(["base=5"])).steps["nums"].params["n"] == 10
    assert load(path, var_overrides=parse_var_overrides(["n=3"])).steps["nums"].params["n"] == 3


def test_render_vars_renders_each_var_after_the_vars_it_uses_and_takes_an_override_as_given() -> None:
    problems: list = []
    values, seen = render_vars(make_environment(), {"label": "{{ vars.size }}-x", "size": 2}, {}, {}, problems)
    assert values == seen == {"label": "2-x", "size": 2} and list(values) == ["label", "size"]
    assert problems == []
    # an overridden var uses nothing: what would be a cycle in the file is none, and its users get the override
    values, _ = render_vars(make_environment(), {"a": "{{ vars.b }}", "b": "{{ vars.a }}"}, {"b": 5}, {}, problems)
    assert values == {"a": 5, "b": 5} and problems == []


def test_render_vars_reports_a_cycle_of_three_once_and_what_uses_it_as_derived() -> None:
    problems: list = []
    raw = {"x": "{{ vars.y }}", "y": "{{ vars.z }}", "z": "{{ vars.x }}", "w": "{{ vars.y }}!"}
    values, _ = render_vars(make_environment(), raw, {}, {}, problems)
    assert [(p.path, str(p), p.derived) for p in problems] == [
        (("vars", "x"), "vars.x, vars.y and vars.z refer to each other (x -> y -> z -> x)", False),
        (("vars", "y"), "in a cycle", True), (("vars", "z"), "in a cycle", True),
        (("vars", "w"), "uses a var that failed to render (vars.y failed to render)", True)]
    assert values == raw  # unrendered: each keeps its text as written
