"""Broken specs: every problem names the file, the line, the key path and what was expected."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.spec_loader import load_spec, parse_var_overrides

DATE = dt.date(2024, 1, 5)

GOOD = """
pipeline: demo
modules: [{mod}]
vars: {{n: 7}}
steps:
  nums:
    transform: t_numbers
    params: {{n: "{{{{ vars.n }}}}"}}
  split:
    transform: t_split
    inputs: {{df: nums}}
    outputs:
      even: {{path: out/even, partition_by: [day]}}
  odd_sql:
    sql: SELECT * FROM odd
    inputs: {{odd: split.odd}}
    outputs: {{odd: {{path: out/odd}}}}
"""


def load(path, **kw):
    return load_spec(path, date=DATE, **kw)


def test_good_spec_loads_with_rendered_params_and_defaults(write_spec, test_transforms_module):
    spec = load(write_spec(GOOD.format(mod=test_transforms_module)))
    assert spec.name == "demo"
    assert spec.steps["nums"].params == {"n": 7}  # a single expression keeps its YAML type
    assert spec.steps["split"].outputs["even"].mode == "overwrite_partitions"
    assert spec.steps["odd_sql"].outputs["odd"].mode == "overwrite"
    assert spec.steps["odd_sql"].inputs["odd"].output == "odd"


def test_var_override_and_default_param(write_spec, test_transforms_module):
    text = GOOD.format(mod=test_transforms_module).replace('params: {n: "{{ vars.n }}"}', "")
    spec = load(write_spec(text))
    assert spec.steps["nums"].params == {"n": 10}  # schema default filled in
    spec = load(write_spec(GOOD.format(mod=test_transforms_module)), var_overrides=parse_var_overrides(["n=3"]))
    assert spec.steps["nums"].params["n"] == 3


BROKEN = [
    # (name, yaml, expected line, expected key path, expected words)
    ("yaml_syntax", "pipeline: demo\nsteps:\n  a: {transform: t_numbers\n  b: 1\n", 4, None, "invalid YAML"),
    ("unknown_top_key", "pipeline: demo\ncolour: blue\nsteps:\n  a: {transform: t_numbers}\n", 2, "colour",
     "unknown key 'colour'"),
    ("missing_steps", "pipeline: demo\n", 1, "(top level)", "'steps' is required"),
    ("unknown_transform", "pipeline: demo\nsteps:\n  a:\n    transform: t_numbrs\n", 4, "steps.a.transform",
     "did you mean 't_numbers'"),
    ("param_fails_schema", "pipeline: demo\nsteps:\n  a:\n    transform: t_numbers\n    params:\n      n: -1\n",
     6, "steps.a.params.n", "minimum"),
    ("unknown_param", "pipeline: demo\nsteps:\n  a:\n    transform: t_numbers\n    params:\n      bogus: 1\n",
     6, "steps.a.params.bogus", "unknown parameter 'bogus'"),
    ("input_names_no_step", "pipeline: demo\nsteps:\n  a: {transform: t_numbers}\n  b:\n    transform: t_split\n"
     "    inputs:\n      df: nope\n", 7, "steps.b.inputs.df", "names no step"),
    ("same_output_twice", "pipeline: demo\nsteps:\n  a:\n    transform: t_numbers\n    outputs: {o: {path: x/y}}\n"
     "  b:\n    transform: t_numbers\n    outputs:\n      o:\n        path: x/y\n", 10, "steps.b.outputs.o.path",
     "also written by steps.a.outputs.o"),
    ("cycle", "pipeline: demo\nsteps:\n  a:\n    sql: SELECT 1\n    depends_on: [b]\n  b:\n    sql: SELECT 2\n"
     "    depends_on: [a]\n", 3, "steps.a", "a -> b -> a"),
    ("undefined_template", "pipeline: demo\nsteps:\n  a:\n    transform: t_numbers\n    params:\n"
     "      day: '{{ vars.missing }}'\n", 6, "steps.a.params.day", "undefined"),
    ("transform_and_sql", "pipeline: demo\nsteps:\n  a:\n    transform: t_numbers\n    sql: SELECT 1\n", 3,
     "steps.a", "exactly one of 'transform'"),
    ("unknown_depends_on", "pipeline: demo\nsteps:\n  a:\n    sql: SELECT 1\n    depends_on: [zzz]\n", 5,
     "steps.a.depends_on[0]", "names no step"),
    ("duplicate_key", "pipeline: demo\nsteps:\n  a: {sql: SELECT 1}\n  a: {sql: SELECT 2}\n", 4, "steps.a",
     "appears twice"),
    ("bad_step_name", "pipeline: demo\nsteps:\n  Bad-Name: {sql: SELECT 1}\n", 3, "steps.Bad-Name", "invalid name"),
    ("undeclared_output", "pipeline: demo\nsteps:\n  a: {transform: t_numbers}\n  s:\n    transform: t_split\n"
     "    inputs: {df: a}\n    outputs:\n      three: {path: p3}\n", 8, "steps.s.outputs.three", "has no output"),
    ("wrong_type", "pipeline: demo\nsteps:\n  a:\n    sql: SELECT 1\n    outputs:\n      o: {path: p, "
     "partition_by: day}\n", 6, "steps.a.outputs.o.partition_by", "expected array"),
    ("bad_write_mode", "pipeline: demo\nsteps:\n  a:\n    sql: SELECT 1\n    outputs:\n      o:\n        path: p\n"
     "        mode: replace\n", 8, "steps.a.outputs.o.mode", "is not one of"),
    ("replace_partitions_needs_every_column", "pipeline: demo\nsteps:\n  a:\n    sql: SELECT 1\n    outputs:\n"
     "      o:\n        path: p\n        partition_by: [day, sym]\n        replace_partitions: {day: x}\n", 9,
     "steps.a.outputs.o.replace_partitions", "a value for each partition_by column"),
    ("missing_input", "pipeline: demo\nsteps:\n  s:\n    transform: t_split\n", 3, "steps.s.inputs",
     "needs input(s) df"),
]


@pytest.mark.parametrize("name,text,line,path,words", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_spec_names_file_line_and_path(write_spec, test_transforms_module, name, text, line, path, words):
    text = text.replace("pipeline: demo\n", f"pipeline: demo\nmodules: [{test_transforms_module}]\n", 1)
    line = line + 1 if name != "missing_steps" else line  # the modules line shifts everything by one
    if name == "yaml_syntax":
        line = None
    spec_path = write_spec(text)
    with pytest.raises(SpecError) as info:
        load(spec_path)
    problems = info.value.problems
    joined = "\n".join(problems)
    hit = [p for p in problems if words in p]
    assert hit, f"no problem mentions {words!r}:\n{joined}"
    problem = hit[0]
    assert problem.startswith(str(spec_path) + ":"), problem
    if line is not None:
        assert problem.startswith(f"{spec_path}:{line}:"), problem
    else:
        assert f"{spec_path}:" in problem and problem.split(":")[1].isdigit(), problem
    if path is not None:
        assert f": {path}:" in problem, problem


def test_all_problems_reported_together(write_spec, test_transforms_module):
    text = f"""
pipeline: demo
modules: [{test_transforms_module}]
steps:
  a:
    transform: t_numbers
    params: {{n: -5, extra: 1}}
  b:
    transform: no_such_transform
  c:
    sql: SELECT 1
    depends_on: [ghost]
"""
    with pytest.raises(SpecError) as info:
        load(write_spec(text))
    joined = "\n".join(info.value.problems)
    for words in ("steps.a.params.n", "steps.a.params.extra", "steps.b.transform", "steps.c.depends_on[0]"):
        assert words in joined, joined
    assert len(info.value.problems) >= 4


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        load(tmp_path / "nope.yaml")


def test_template_context_has_dates_config_and_env(write_spec, test_transforms_module):
    text = f"""
pipeline: demo
modules: [{test_transforms_module}]
steps:
  a:
    transform: t_numbers
    params: {{day: "{{{{ prev_date }}}}"}}
  b:
    sql: "SELECT '{{{{ date }}}}' AS d, '{{{{ config.storage.root }}}}' AS r, '{{{{ env.TF_TEST_VALUE }}}}' AS e"
"""
    spec = load_spec(write_spec(text), date=dt.date(2024, 1, 8), env={"TF_TEST_VALUE": "xyz"})
    assert spec.steps["a"].params["day"] == "2024-01-05"  # Monday -> previous Friday
    assert "'2024-01-08' AS d" in spec.steps["b"].sql
    assert "'warehouse' AS r" in spec.steps["b"].sql and "'xyz' AS e" in spec.steps["b"].sql


def test_sandbox_blocks_unsafe_templates(write_spec, test_transforms_module):
    text = f"""
pipeline: demo
modules: [{test_transforms_module}]
steps:
  a:
    sql: "SELECT '{{{{ ''.__class__.__mro__[1].__subclasses__() }}}}'"
"""
    with pytest.raises(SpecError, match="steps.a.sql"):
        load(write_spec(text))


@pytest.mark.parametrize("value", ["0.0000001", "1e-5", "2.5E-3"])
def test_a_small_threshold_reaches_a_number_param_as_a_number(tmp_path, value):
    # str(1e-07) is '1e-07', and YAML 1.1 reads '1e-5' as text: both must still satisfy a number schema
    root = Path(__file__).resolve().parents[2]
    spec = load_spec(root / "pipelines" / "preprocess.yaml", date=DATE,
                     var_overrides=parse_var_overrides([f"max_bad_share={value}"]))
    assert spec.steps["ingest"].params["max_bad_share"] == float(value)
    text = (root / "pipelines" / "preprocess.yaml").read_text().replace("max_bad_share: 0.05 ",
                                                                         f"max_bad_share: {value} ")
    (tmp_path / "p.yaml").write_text(text)
    assert load_spec(tmp_path / "p.yaml", date=DATE).steps["ingest"].params["max_bad_share"] == float(value)
