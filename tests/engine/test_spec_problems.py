"""How the problems found in a spec are worded and located (engine.spec_problems): schema errors in the spec's
words, each at its line, a value made wrong by a --var naming it, all of them together in line order."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from engine.errors import SpecError
from engine.spec_loader import load_spec, parse_var_overrides
from engine.spec_problems import Problems, schema_problems
from engine.yaml_lines import load_with_lines
from tests.engine.spec_helpers import DATE, problems_of


def test_a_value_made_wrong_by_a_var_names_the_var() -> None:
    """The line the error names holds a correct template: the wrong value came from the command line."""
    root = Path(__file__).resolve().parents[2]
    with pytest.raises(SpecError) as info:
        load_spec(root / "pipelines" / "analyze.yaml", date=DATE, var_overrides=parse_var_overrides(["ma_window=abc"]))
    message = str(info.value)
    assert "steps.trade_ma.params.window: 'abc' does not match" in message
    assert message.endswith("(the value comes from --var ma_window=abc)")
    with pytest.raises(SpecError) as info:  # a value wrong in the file itself names no var
        load_spec(root / "pipelines" / "analyze.yaml", date=DATE, var_overrides=parse_var_overrides(["nope=1"]))
    assert "--var nope: the spec declares no such variable" in str(info.value)
    assert "the value comes from" not in str(info.value)


def test_every_unknown_key_of_a_mapping_is_reported_with_the_closest_allowed_name(write_spec):
    """Only the first unknown key of a mapping was named: fixing it revealed the next, one run at a time."""
    path = write_spec("pipeline: demo\nsteps:\n  a:\n    sql: SELECT 1 AS x\n    inptus: {}\n    dependson: []\n"
                      "    colour: red\n")
    expected = "expected one of: cache, depends_on, description, expectations, inputs, outputs, params, sql, transform"
    assert problems_of(path) == [
        f"{path}:5: steps.a.inptus: unknown key 'inptus' (did you mean 'inputs'?); {expected}",
        f"{path}:6: steps.a.dependson: unknown key 'dependson' (did you mean 'depends_on'?); {expected}",
        f"{path}:7: steps.a.colour: unknown key 'colour'; {expected}"]


def test_a_name_yaml_reads_as_a_boolean_null_or_number_is_an_error_at_its_line(write_spec):
    """`yes:`, `~:` and `2:` are not text to YAML: such steps passed validate under the names True, None, 2."""
    path = write_spec("pipeline: demo\nsteps:\n  a: {sql: SELECT 1 AS x}\n  yes: {sql: SELECT 2 AS y}\n"
                      "  ~: {sql: SELECT 3 AS z}\n  2:\n    sql: SELECT * FROM a\n    outputs:\n      on: {path: p}\n"
                      "    inputs: {1.5: a}\n")
    step, other = "names must match ^[a-z_][a-z0-9_]*$", "names must match ^[A-Za-z_][A-Za-z0-9_]*$"
    assert problems_of(path) == [
        f"{path}:4: steps.yes: a name YAML reads as bool True, not as text; quote it, and {step}",
        f"{path}:5: steps.~: a name YAML reads as null None, not as text; quote it, and {step}",
        f"{path}:6: steps.2: a name YAML reads as int 2, not as text; quote it, and {step}",
        f"{path}:9: steps.2.outputs.on: a name YAML reads as bool True, not as text; quote it, and {other}",
        f"{path}:10: steps.2.inputs.1.5: a name YAML reads as float 1.5, not as text; quote it, and {other}"]


def test_an_empty_step_says_what_a_step_needs(write_spec):
    path = write_spec("pipeline: demo\nsteps:\n  a: {sql: SELECT 1 AS x}\n  empty_step:\n")
    assert problems_of(path) == [f"{path}:4: steps.empty_step: the step is empty: a step needs 'transform' (a "
                                 "registered transform) or 'sql'"]


def _schema_problems(schema: dict, instance: object) -> list[tuple[tuple, str]]:
    errors = jsonschema.Draft202012Validator(schema).iter_errors(instance)
    return [found for err in errors for found in schema_problems(err)]


@pytest.mark.parametrize("schema,instance,expected", [
    ({"type": "object", "required": ["path"]}, {}, [((), "'path' is required but missing")]),
    ({"enum": ["warn", "drop"]}, "loud", [((), "'loud' is not one of ['warn', 'drop']")]),
    ({"type": "string", "pattern": "^[a-z]+$"}, "Abc", [((), "'Abc' does not match the pattern ^[a-z]+$")]),
    ({"type": "object", "properties": {"n": {"type": "integer"}}}, {"n": "many"},
     [(("n",), "expected integer, got str 'many'")]),
    ({"type": "object", "properties": {"n": {"type": "integer"}}}, {"n": None},
     [(("n",), "has no value (YAML reads an empty value as null); expected integer")]),
])
def test_a_schema_error_is_worded_in_the_specs_terms(schema, instance, expected):
    assert _schema_problems(schema, instance) == expected


def test_problems_come_in_line_order_and_a_value_whose_template_failed_is_not_reported_again():
    _data, lines = load_with_lines("pipeline: demo\nsteps:\n  a:\n    sql: SELECT 1\n  b:\n    sql: x\n")
    problems = Problems("spec.yaml", lines)
    problems.unrendered.add(("steps", "b", "sql"))
    problems.add(("steps", "b"), "second")
    problems.add(("steps", "b", "sql"), "a schema error of text that is still '{{ ... }}'")
    problems.add(("steps", "a", "sql"), "first")
    problems.add(("steps", "zz"), "at the line of the nearest key the file has")
    problems.warn(("steps", "a"), "a warning")
    with pytest.raises(SpecError) as info:
        problems.raise_if_any()
    assert info.value.problems == ["spec.yaml:2: steps.zz: at the line of the nearest key the file has",
                                   "spec.yaml:4: steps.a.sql: first", "spec.yaml:5: steps.b: second"]
    assert problems.warning_lines() == ["spec.yaml:3: steps.a: a warning"]
    Problems("spec.yaml", lines).raise_if_any()  # nothing found: nothing raised
    unlocated = Problems("spec.yaml")  # no line known (the YAML did not parse): the file alone
    unlocated.add(("steps",), "is required")
    with pytest.raises(SpecError, match=r"^spec.yaml: steps: is required$"):
        unlocated.raise_if_any()
