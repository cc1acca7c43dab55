"""Broken specs: every problem names the file, the line, the key path and what was expected."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from engine.config import Config, PostgresConfig
from engine.errors import SpecError
from engine.spec_loader import load_spec, parse_var_overrides
from tests.engine.spec_helpers import DATE, VARS, load, problems_of

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
    holiday = Config(holidays=(dt.date(2024, 1, 5),))  # [pipeline] holidays: that Friday the exchange was shut
    assert load_spec(write_spec(text), date=dt.date(2024, 1, 8), env={"TF_TEST_VALUE": "xyz"},
                     config=holiday).steps["a"].params["day"] == "2024-01-04"
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


def test_overriding_a_var_the_spec_does_not_declare_is_an_error(write_spec, test_transforms_module):
    path = write_spec(VARS.format(mod=test_transforms_module))
    with pytest.raises(SpecError) as info:
        load(path, var_overrides=parse_var_overrides(["bsae=5"]))
    assert f"{path}:3: vars: --var bsae: the spec declares no such variable (its vars: base, n)" in str(info.value)


def test_templates_do_not_see_credentials_in_the_environment(write_spec, test_transforms_module):
    text = VARS.format(mod=test_transforms_module).replace('"{{ vars.base * 2 }}"', '"{{ env.%s | length }}"')
    env = {"PLAIN": "abc", "TICKFLOW_POSTGRES_PASSWORD": "pw1", "MY_API_KEY": "k", "AZURE_STORAGE_ACCESS_KEY": "k2",
           "SOME_TOKEN": "t", "HOLDS_SECRET_VALUE": "s3cr3t"}
    config = Config(postgres=PostgresConfig(password="s3cr3t"))
    assert load(write_spec(text % "PLAIN"), env=env, config=config).steps["nums"].params["n"] == 3
    for name in ("TICKFLOW_POSTGRES_PASSWORD", "MY_API_KEY", "AZURE_STORAGE_ACCESS_KEY", "SOME_TOKEN",
                 "HOLDS_SECRET_VALUE"):
        with pytest.raises(SpecError, match=f"undefined: env.{name}$"):  # once: not again at the param using it
            load(write_spec(text % name), env=env, config=config)


def two_writers(first: str, second: str, mode: str = "overwrite") -> str:
    return ("pipeline: demo\nsteps:\n  a:\n    sql: SELECT 1 AS x\n"
            f"    outputs:\n      o: {{path: {first}, mode: {mode}}}\n"
            "  b:\n    sql: SELECT 2 AS x\n    outputs:\n      small:\n"
            f"        path: {second}\n")


@pytest.mark.parametrize("first,second,relation", [
    ("mine", "mine/small_trades", "lies inside 'mine'"),
    ("mine/", "mine/./small_trades/", "lies inside 'mine'"),
    ("analytics/bars_1m", "analytics", "contains 'analytics/bars_1m'"),
    ("analytics/bars_1m", "analytics/bars_1m/sub", "lies inside 'analytics/bars_1m'"),
])
def test_nested_output_paths_are_an_error(write_spec, first, second, relation):
    """Overwriting the outer dataset at run time would delete the inner one, written by another step."""
    path = write_spec(two_writers(first, second))
    problems = problems_of(path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}:11: steps.b.outputs.small.path: output path "), problems
    assert relation in problems[0] and "written by steps.a.outputs.o" in problems[0], problems


def test_nesting_is_refused_whatever_the_mode(write_spec):
    problem = problems_of(write_spec(two_writers("mine", "mine/x", mode="append")))[0]
    assert "'mine/x' would be read as part of 'mine'" in problem


def test_output_paths_compare_by_component(write_spec):
    """x/y and x/./y/ are one dataset; bars_1m and bars_1m5 are siblings, not nested."""
    problem = problems_of(write_spec(two_writers("x/y", "x/./y/")))[0]
    assert "also written by steps.a.outputs.o; two steps cannot write one dataset" in problem
    spec = load(write_spec(two_writers("analytics/bars_1m", "analytics/bars_1m5")))
    assert spec.steps["b"].outputs["small"].path == "analytics/bars_1m5"


EXPECTING = """
pipeline: demo
modules: [{mod}]
steps:
  nums: {{transform: t_numbers}}
  split:
    transform: t_split
    inputs: {{df: nums}}
    outputs:
      even: {{path: out/even}}
    expectations:
      - {{name: positive, expr: "id >= 0"}}
      - {{name: some_odd, output: {output}, row_count: {{min: 1}}}}
"""


@pytest.mark.parametrize("output,words", [
    ("evn", "checks output 'evn', which this step does not write; did you mean 'even'?"),
    ("odd", "checks output 'odd', which this step does not write (transform 't_split' returns it, but the step "
            "does not write it)"),
])
def test_an_expectation_on_an_output_the_step_does_not_write_is_an_error(write_spec, test_transforms_module,
                                                                         output, words):
    """The runner checks expectations on written outputs only: this one would silently never run."""
    path = write_spec(EXPECTING.format(mod=test_transforms_module, output=output))
    problems = problems_of(path)
    assert problems == [f"{path}:12: steps.split.expectations[1].output: expectation 'some_odd' {words}; "
                        "its outputs are: even"]
    assert load(write_spec(EXPECTING.format(mod=test_transforms_module, output="even"))).steps["split"]


def test_expectations_on_a_step_without_outputs_are_an_error(write_spec, test_transforms_module):
    """Expectations are checked while outputs are written: on a step that writes nothing they never run."""
    text = EXPECTING.format(mod=test_transforms_module, output="even").replace(
        "    outputs:\n      even: {path: out/even}\n", "")
    path = write_spec(text)
    problems = problems_of(path)
    assert len(problems) == 1 and problems[0].startswith(f"{path}:8: steps.split.expectations: this step writes "
                                                         "no outputs, so its expectations would never run")


DATASET_READER = """
pipeline: demo
steps:
  reader:
    sql: SELECT * FROM t
    inputs: {{t: "dataset:{read}"}}
    outputs: {{o: {{path: other}}}}
  writer:
    sql: SELECT {source}
    {inputs}
    outputs: {{o: {{path: mine}}}}
"""


@pytest.mark.parametrize("read", ["mine", "./mine/", "mine/day=2024-01-05"])
def test_a_step_reading_a_dataset_runs_after_the_step_writing_it(write_spec, read):
    """Else the reader may run first and read the previous run's version of the dataset."""
    from engine.dag import dag_of

    spec = load(write_spec(DATASET_READER.format(read=read, source="1 AS x", inputs="")))
    dag = dag_of(spec.steps)
    assert dag.parents["reader"] == {"writer"} and dag.order() == ["writer", "reader"]
    assert dag.edges() == [("writer", "reader")]  # what `graph` draws


def test_a_dataset_read_of_an_unrelated_path_adds_no_edge(write_spec):
    from engine.dag import dag_of

    spec = load(write_spec(DATASET_READER.format(read="mine5", source="1 AS x", inputs="")))
    assert dag_of(spec.steps).edges() == []


def test_a_cycle_through_a_dataset_read_is_reported(write_spec):
    path = write_spec(DATASET_READER.format(read="mine", source="* FROM r", inputs="inputs: {r: reader}"))
    assert problems_of(path) == [f"{path}:3: steps.reader: dependency cycle: reader -> writer -> reader "
                                 "(reader reads dataset:mine, which writer writes)"]


ROOT = Path(__file__).resolve().parents[2]


def test_a_step_writing_a_dataset_the_pipeline_reads_is_an_error(tmp_path):
    """The audit's case: a SQL step of analyze writing `trade` replaced every date of the warehouse's trades."""
    text = (ROOT / "pipelines" / "analyze.yaml").read_text() + (
        "\n  big_trades:\n    sql: SELECT * FROM trades WHERE trade_size > 100\n"
        "    outputs: {big_trades: {path: trade}}\n")
    spec = tmp_path / "analyze.yaml"
    spec.write_text(text)
    line = len(text.splitlines())
    assert problems_of(spec) == [f"{spec}:{line}: steps.big_trades.outputs.big_trades.path: 'trade' is a dataset "
                                 "this pipeline reads (steps.trades.params.path); a step must not overwrite its own "
                                 "input"]


OWN_INPUT = """
pipeline: demo
steps:
  r:
    {reader}
  w:
    sql: SELECT * FROM r
    outputs: {{o: {{path: {written}}}}}
"""


@pytest.mark.parametrize("reader,written,what", [
    ("transform: read_dataset\n    params: {path: trade}", "trade", "'trade' is a dataset"),
    ("transform: read_dataset\n    params: {path: trade}", "trade/big", "'trade/big' lies inside 'trade', a dataset"),
    ("transform: read_dataset\n    params: {path: analytics/x/}", "analytics",
     "'analytics' contains 'analytics/x/', a dataset"),
])
def test_an_output_nesting_with_a_dataset_its_step_reads_upstream_is_an_error(write_spec, reader, written, what):
    path = write_spec(OWN_INPUT.format(reader=reader, written=written))
    where = "params.path" if "read_dataset" in reader else "inputs.t"
    assert problems_of(path) == [f"{path}:8: steps.w.outputs.o.path: {what} this pipeline reads (steps.r.{where}); "
                                 "a step must not overwrite its own input"]


def test_a_step_writing_the_dataset_it_reads_itself_is_an_error(write_spec):
    path = write_spec(DATASET_READER.format(read="other", source="1 AS x", inputs=""))
    assert problems_of(path) == [f"{path}:6: steps.reader.outputs.o.path: 'other' is a dataset this pipeline reads "
                                 "(steps.reader.inputs.t); a step must not overwrite its own input"]


UNORDERED = """
pipeline: demo
steps:
  r:
    transform: read_dataset
    params: {{path: made}}
    {depends}
  w:
    sql: SELECT 1 AS x
    outputs: {{o: {{path: made}}}}
"""


def test_a_dataset_read_in_no_order_with_its_writer_is_an_error_and_depends_on_orders_it(write_spec):
    """Without an order the read may see either version; with `depends_on` it reads this run's, as a
    `dataset:` input does (which gets that order by itself)."""
    path = write_spec(UNORDERED.format(depends=""))
    assert problems_of(path) == [
        f"{path}:9: steps.w.outputs.o.path: 'made' is a dataset this pipeline reads (steps.r.params.path), and "
        "step 'r' does not run after this step, so it may read either version; a pipeline must not overwrite its "
        "own input (read this step's output as an input of 'r' instead)"]
    assert load(write_spec(UNORDERED.format(depends="depends_on: [w]"))).steps["r"].dataset_params == ("path",)


PATHS = """
pipeline: demo
steps:
  r:
    transform: read_dataset
    params: {{path: "{param}"}}
  s:
    sql: SELECT * FROM t
    inputs: {{t: "dataset:{read}"}}
    outputs: {{o: {{path: "{out}"}}}}
"""


@pytest.mark.parametrize("param,read,out,key,words", [
    ("t", "u", "analytics/../../../../../decoy", "steps.s.outputs.o.path",
     "'analytics/../../../../../decoy' has a '..' component; a dataset path must stay under the storage root"),
    ("t", "u", "analytics//x", "steps.s.outputs.o.path",
     "'analytics//x' has an empty component ('//'); expected name/name/... under the storage root"),
    ("t", "../x", "o", "steps.s.inputs.t",
     "'../x' has a '..' component; a dataset path must stay under the storage root"),
    ("t", "/etc", "o", "steps.s.inputs.t",
     "'/etc' is an absolute path; a dataset path is relative to the storage root"),
    ("a/../../b", "u", "o", "steps.r.params.path",
     "'a/../../b' has a '..' component; a dataset path must stay under the storage root"),
    # a write into the engine's own _reports/ had deleted every earlier run report, validate saying OK
    ("t", "u", "_reports/analyze", "steps.s.outputs.o.path",
     "'_reports/analyze' has a component starting with '_' ('_reports'): such names are hidden from Spark's "
     "readers and reserved for the engine (_reports, .tickflow_staging); name the dataset without it"),
    ("t", "u", "analytics/.hidden", "steps.s.outputs.o.path",
     "'analytics/.hidden' has a component starting with '.' ('.hidden'): such names are hidden from Spark's "
     "readers and reserved for the engine (_reports, .tickflow_staging); name the dataset without it"),
])
def test_a_dataset_path_leaving_the_storage_root_is_an_error(write_spec, param, read, out, key, words):
    """At run time such an output would be staged and replaced outside the warehouse."""
    path = write_spec(PATHS.format(param=param, read=read, out=out))
    problems = problems_of(path)
    assert len(problems) == 1 and problems[0].endswith(f": {key}: {words}"), problems


BROKEN_MODULES = {
    "tf_broken_syntax": ("def f(:\n    pass\n", "SyntaxError at {file}:1: invalid syntax"),
    "tf_broken_zero": ("X = 1\nY = X / 0\n", "ZeroDivisionError at {file}:2: division by zero"),
    "tf_broken_schema": ("from engine.registry import transform\n\n"
                         "@transform('t_broken_schema', description='x',\n"
                         "           params_schema={'type': 'object', 'properties': {'n': {'type': 'integr'}}})\n"
                         "def t(ctx, inputs, params):\n    return None\n",
                         "transform 't_broken_schema' at {file}:3: invalid params schema at properties/n/type: "
                         "'integr' is not a JSON Schema type (did you mean 'integer'?); expected one of array, "
                         "boolean, integer, null, number, object, string"),
}


@pytest.mark.parametrize("module", sorted(BROKEN_MODULES))
def test_a_module_failing_at_import_is_a_spec_problem(write_spec, tmp_path, monkeypatch, module):
    """Not a traceback: the problem names the spec line, the module and where in it the import failed."""
    source, words = BROKEN_MODULES[module]
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(plugins))
    path = write_spec(f"pipeline: demo\nmodules: [{module}]\nsteps:\n  a: {{sql: SELECT 1}}\n")
    problems = problems_of(path)
    prefix = f"{path}:2: modules[0]: cannot import transform module '{module}' (named in {path}): "
    assert len(problems) == 1 and problems[0].startswith(prefix + words.format(file=plugins / f"{module}.py"))


def test_a_step_whose_transform_module_failed_to_import_gets_no_second_unknown_transform_problem(
        write_spec, tmp_path, monkeypatch):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "tf_broken_gone.py").write_text("from engine.registry import transform\nX = 1 / 0\n\n\n"
                                                "@transform('t_gone', description='x')\n"
                                                "def t(ctx, inputs, params):\n    return None\n")
    monkeypatch.syspath_prepend(str(plugins))
    spec = "pipeline: demo\nmodules: [tf_broken_gone]\nsteps:\n  a: {{transform: {name}}}\n"
    (only,) = problems_of(write_spec(spec.format(name="t_gone")))
    assert "cannot import transform module 'tf_broken_gone'" in only
    problems = problems_of(write_spec(spec.format(name="t_gonne")))  # not the module's: a typo, said so
    assert len(problems) == 2 and "unknown transform 't_gonne'" in problems[1], problems


DURATIONS = """
pipeline: demo
steps:
  trades: {{transform: read_dataset, params: {{path: trade}}}}
  bars:
    transform: bars
    inputs: {{trades: trades}}
    params: {{bar_length: {bar}}}
  ma:
    transform: moving_average
    inputs: {{trades: trades}}
    params: {{window: {window}}}
"""


def test_a_misspelt_duration_is_refused_before_spark_starts(write_spec):
    path = write_spec(DURATIONS.format(bar="5 minuts", window="0 minutes"))
    problems = problems_of(path)
    assert [p.split(" does not match")[0] for p in problems] == [
        f"{path}:7: steps.bars.params.bar_length: '5 minuts'", f"{path}:11: steps.ma.params.window: '0 minutes'"]
    spec = load(write_spec(DURATIONS.format(bar="5 Minutes", window="90s")))
    assert spec.steps["bars"].params["bar_length"] == "5 Minutes"


def test_the_duration_pattern_accepts_exactly_what_the_transforms_parse():
    """The schemas' pattern mirrors parse_duration_us: a duration valid in one is valid in the other."""
    import itertools
    import json
    import re

    from engine.errors import TransformError
    from transforms.analytics.timeutil import _UNITS_US, parse_duration_us

    root = Path(__file__).resolve().parents[2] / "schemas" / "transforms"
    patterns = {json.loads((root / "bars.json").read_text())["properties"]["bar_length"]["pattern"],
                json.loads((root / "moving_average.json").read_text())["properties"]["window"]["pattern"]}
    assert len(patterns) == 1
    pattern = patterns.pop()

    def parses(text: str) -> bool:
        try:
            return parse_duration_us(text) > 0
        except TransformError:
            return False

    units = {"", "minuts", "sek", "ſ", "mſ", "\u212a", "µs", "m s"}
    for unit in _UNITS_US:
        units |= {unit, unit + "s", unit + "ss", unit[:-1], unit.upper(), unit.title(), unit.upper() + "S", unit + "x"}
    numbers = ["0", "00", "1", "01", "10", "007", "-1", "+1", "1.5", "1e3"]
    cases = [f"{a}{n}{b}{u}{c}" for n in numbers for u in units for a, b, c in itertools.product(["", " ", "\t"],
                                                                                                 repeat=3)]
    mismatched = [t for t in cases if parses(t) != bool(re.search(pattern, t))]
    assert not mismatched and any(map(parses, cases)), mismatched[:10]


def test_a_failed_template_is_reported_once_not_again_by_the_params_schema(write_spec, test_transforms_module):
    text = VARS.format(mod=test_transforms_module).replace('"{{ vars.n }}"', '"{{ vars.m }}"')
    with pytest.raises(SpecError) as info:
        load(write_spec(text))
    assert len(info.value.problems) == 1 and "vars.m (the spec's vars are: base, n" in info.value.problems[0]


def test_a_params_problem_names_the_schema_expectation_and_gives_the_description_only_as_a_hint(
        write_spec, test_transforms_module):
    text = f"pipeline: demo\nmodules: [{test_transforms_module}]\nsteps:\n  a:\n    transform: t_numbers\n" \
           "    params:\n      n: many\n"
    path = write_spec(text)
    assert problems_of(path) == [f"{path}:7: steps.a.params.n: 'many' is a string; expected an integer >= 0 "
                                 "(hint, from the description of 'n': how many rows)"]


BAD_EXPECTATIONS = """
pipeline: demo
steps:
  a:
    sql: SELECT 1 AS x
    outputs: {o: {path: out/a}}
    expectations:
      - {name: fine, expr: "x > 0"}
      - {name: bad one, expr: "x > 0"}
      - name: loud
        expr: "x > 0"
        action: explode
      - {name: fine, row_count: {min: 1}}
      - {name: wrong_way, row_count: {min: 5, max: 1}}
"""


def test_every_bad_expectation_is_reported_at_its_own_line(write_spec):
    """Not only the first bad item of the step: the author fixes them all in one go."""
    path = write_spec(BAD_EXPECTATIONS)
    assert problems_of(path) == [
        f"{path}:8: steps.a.expectations[1].name: expectation 'bad one': 'name' must be letters, digits and _ "
        "(e.g. bid_le_ask), got 'bad one'",
        f"{path}:11: steps.a.expectations[2].action: expectation 'loud': action 'explode' is not one of warn, "
        "drop, fail",
        f"{path}:12: steps.a.expectations[3].name: expectation 'fine': duplicate name 'fine' (expectations[0] has "
        "it too); names are unique within a step",
        f"{path}:13: steps.a.expectations[4].row_count: expectation 'wrong_way': row_count.min (5) is greater than "
        "row_count.max (1)",
    ]


CHARTS = """
pipeline: demo
report:
  charts:
    - {{title: Fine, source: b, x: x, y: y}}
    - {{title: Fine too, source: b.o, x: x, y: y}}
    - {{title: Recorded, source: "metrics:b.counts"}}
    - {{title: Committed, source: "dataset:elsewhere/made", x: x, y: y}}
    - {{title: Bad, source: {source}, x: x, y: y}}
    - {{title: Bad kind, source: b, kind: {kind}, x: x, y: y}}
steps:
  a:
    sql: SELECT 1 AS x, 2 AS y
  b:
    sql: SELECT 1 AS x, 2 AS y
    outputs: {{o: {{path: out/b}}}}
"""


@pytest.mark.parametrize("source,words", [
    ("a.nope", "source 'a.nope': step 'a' has no output 'nope'; its outputs are: out"),
    ("b.nope", "source 'b.nope': step 'b' has no output 'nope'; its outputs are: out, o"),
    ("c", "source 'c' names no step; expected a step, step.output, metrics:<step>.<key> or dataset:<path>"),
    ('"metrics:zz.k"', "source 'metrics:zz.k' names no step; expected a step, step.output, "
                       "metrics:<step>.<key> or dataset:<path>"),
])
def test_every_chart_source_that_cannot_be_resolved_is_a_problem(write_spec, source, words):
    """A step without declared outputs still has no output 'nope': the chart would never be drawn."""
    path = write_spec(CHARTS.format(source=source, kind="bar"))
    assert problems_of(path) == [f"{path}:8: report.charts[4].source: chart 'Bad': {words}"]
    good = load(write_spec(CHARTS.format(source="a.out", kind="bar")))
    assert [c["title"] for c in good.charts][-2:] == ["Bad", "Bad kind"]


def test_every_bad_chart_is_reported_at_its_own_line(write_spec):
    path = write_spec(CHARTS.format(source="a.nope", kind="pie"))
    assert problems_of(path) == [f"{path}:8: report.charts[4].source: chart 'Bad': source 'a.nope': step 'a' has "
                                 "no output 'nope'; its outputs are: out",
                                 f"{path}:9: report.charts[5].kind: chart 'Bad kind': kind 'pie' is not one of "
                                 "line, bar, barh, stacked_bar"]


def test_a_failed_var_is_reported_once_not_again_at_what_is_built_from_it(write_spec, test_transforms_module):
    """A param built from a failed var would get the var's raw '{{ ... }}' text and fail its schema too."""
    text = f"""
pipeline: demo
modules: [{test_transforms_module}]
vars:
  a: "{{{{ vars.nope }}}}"
  b: "{{{{ vars.a }}}}-x"
steps:
  nums:
    transform: t_numbers
    params: {{n: "{{{{ vars.a }}}}", day: "{{{{ vars.b }}}}"}}
  s:
    sql: "SELECT '{{{{ vars.a }}}}' AS x"
    outputs: {{o: {{path: "out/{{{{ vars.b }}}}"}}}}
"""
    path = write_spec(text)
    assert problems_of(path) == [f"{path}:4: vars.a: template refers to something undefined: vars.nope "
                                 "(the spec's vars are: a, b)"]


# -- SQL steps read other steps by name --------------------------------------------------------------------

SKETCH = """
pipeline: sketch
steps:
  trades: {{transform: read_dataset, params: {{path: trade, partitions: {{trade_dt: "{{{{ date }}}}"}}}}}}
  vwap_1m:                              # a metric added with SQL only: no inputs declared
    sql: |
      SELECT trade_dt, symbol, window(event_tm, '1 minute').start AS minute,
             sum(trade_pr * trade_size) / sum(trade_size) AS vwap
      FROM {table} GROUP BY trade_dt, symbol, window(event_tm, '1 minute')
    outputs: {{vwap_1m: {{path: analytics/vwap_1m, partition_by: [trade_dt]}}}}
  busiest:                              # two steps by name, a CTE, a subquery, a declared input
    sql: |
      WITH per_symbol AS (SELECT symbol, sum(trade_size) AS volume FROM Trades GROUP BY symbol)
      SELECT v.trade_dt, v.symbol, v.minute, v.vwap FROM vwap_1m v JOIN per_symbol p USING (symbol)
      WHERE p.volume = (SELECT max(volume) FROM per_symbol) AND v.symbol NOT IN (SELECT symbol FROM skip)
    inputs: {{skip: "dataset:skip"}}
    outputs: {{busiest: {{path: analytics/busiest}}}}
"""


def test_a_sql_step_reads_another_step_by_its_name_without_declaring_inputs(write_spec):
    """The design's own sketch: ``FROM trades`` in a step with no inputs reads the step 'trades'."""
    from engine.dag import dag_of
    from engine.spec import InputRef

    spec = load(write_spec(SKETCH.format(table="trades")))
    vwap, busiest = spec.steps["vwap_1m"], spec.steps["busiest"]
    assert dict(vwap.inputs) == {"trades": InputRef(step="trades")}  # as `inputs: {trades: trades}` would be
    assert vwap.implicit_inputs == ("trades",)
    assert dict(busiest.inputs) == {"skip": InputRef(dataset="skip"), "trades": InputRef(step="trades"),
                                    "vwap_1m": InputRef(step="vwap_1m")}  # FROM Trades: names ignore case
    assert busiest.implicit_inputs == ("trades", "vwap_1m")
    dag = dag_of(spec.steps)
    assert dag.edges() == [("trades", "vwap_1m"), ("trades", "busiest"), ("vwap_1m", "busiest")]  # `graph`
    assert dag.order() == ["trades", "vwap_1m", "busiest"]


def test_a_table_that_is_neither_an_input_nor_a_step_is_an_error(write_spec):
    path = write_spec(SKETCH.format(table="tradez"))
    assert problems_of(path) == [
        f"{path}:5: steps.vwap_1m.sql: table 'tradez' is neither an input of this step nor a step of the pipeline "
        "(inputs: none; steps: trades, busiest); did you mean 'trades'?"]
    text = SKETCH.format(table="trades").replace("FROM per_symbol)", "FROM per_symbols)")
    path = write_spec(text.replace("FROM skip", "FROM busiest"))
    assert problems_of(path) == [
        f"{path}:11: steps.busiest.sql: table 'per_symbols' is neither an input of this step nor a step of the "
        "pipeline (inputs: skip; steps: trades, vwap_1m); did you mean 'per_symbol'?",
        f"{path}:11: steps.busiest.sql: table 'busiest' is this step's own name; a step cannot read its own output"]


def test_a_spec_with_an_unknown_table_runs_nothing(write_spec, tmp_path):
    """`run` refuses the spec before Spark starts: no step runs, no job is recorded, nothing is written."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    path = write_spec(SKETCH.format(table="tradez"))
    cfg = tmp_path / "c.ini"
    cfg.write_text(f"[storage]\nroot = {tmp_path}/wh\nraw_root = {tmp_path}/raw\n"
                   f"[tracker]\nsqlite_path = {tmp_path}/t.sqlite\n")
    out = subprocess.run([sys.executable, str(root / "run_pipeline.py"), "run", str(path), "--date", "2024-01-05",
                          "--config", str(cfg)], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"{path}:5: steps.vwap_1m.sql: table 'tradez' is neither" in out.stdout + out.stderr
    assert not (tmp_path / "wh").exists() and not (tmp_path / "t.sqlite").exists()


def test_the_sketch_runs_end_to_end_on_spark(write_spec, tmp_path, spark):
    import datetime as dt

    from engine.config import StorageConfig
    from engine.registry import REGISTRY
    from engine.runner import PipelineRunner, RunOptions
    from engine.storage.local import LocalStorage

    at = dt.datetime.combine
    rows = [(DATE, "AAA", at(DATE, dt.time(9, 30, 10)), 10.0, 100),
            (DATE, "AAA", at(DATE, dt.time(9, 30, 50)), 12.0, 300),
            (DATE, "AAA", at(DATE, dt.time(9, 31, 5)), 11.0, 200),
            (DATE, "BBB", at(DATE, dt.time(9, 30, 20)), 50.0, 900),
            (DATE - dt.timedelta(days=1), "AAA", at(DATE, dt.time(9, 30)), 99.0, 5000)]  # another date: not read
    schema = "trade_dt date, symbol string, event_tm timestamp_ntz, trade_pr double, trade_size int"
    spark.createDataFrame(rows, schema).write.partitionBy("trade_dt").parquet(str(tmp_path / "wh" / "trade"))
    spark.createDataFrame([("BBB",)], "symbol string").write.parquet(str(tmp_path / "wh" / "skip"))
    config = Config(storage=StorageConfig(root=str(tmp_path / "wh"), raw_root=str(tmp_path / "raw")),
                    base_dir=tmp_path)
    storage = LocalStorage(tmp_path / "wh")
    spec = load(write_spec(SKETCH.format(table="trades")), config=config)
    runner = PipelineRunner(spec, config, date=DATE, storage=storage, raw_storage=LocalStorage(tmp_path / "raw"),
                            registry=REGISTRY, spark_provider=lambda: spark, options=RunOptions(parallel_steps=2))
    record = runner.run()
    assert record.status == "success" and [s.name for s in record.steps] == ["trades", "vwap_1m", "busiest"]

    def read(rel):
        df = spark.read.parquet(storage.read_uri(rel)).select("trade_dt", "symbol", "minute", "vwap")
        return sorted(tuple(r) for r in df.collect())

    minute = [at(DATE, dt.time(9, 30)), at(DATE, dt.time(9, 31))]
    assert read("analytics/vwap_1m") == [(DATE, "AAA", minute[0], 11.5), (DATE, "AAA", minute[1], 11.0),
                                         (DATE, "BBB", minute[0], 50.0)]  # (10*100 + 12*300) / 400 = 11.5
    # BBB traded most (900) but is skipped; AAA is then no longer the busiest of all: nothing
    assert read("analytics/busiest") == []
    spark.createDataFrame([("CCC",)], "symbol string").write.mode("overwrite").parquet(str(tmp_path / "wh" / "skip"))
    runner = PipelineRunner(spec, config, date=DATE, storage=storage, raw_storage=LocalStorage(tmp_path / "raw"),
                            registry=REGISTRY, spark_provider=lambda: spark, options=RunOptions(parallel_steps=2))
    assert runner.run().status == "success"
    assert read("analytics/busiest") == [(DATE, "BBB", minute[0], 50.0)]


def test_product_sql_steps_read_exactly_their_declared_inputs(repo_root):
    """sqlglot reads every SQL of the product specs (CTEs, window(), max_by, WINDOW w AS ...) as Spark does."""
    from engine.sql_text import sql_tables

    sql_steps = 0
    for name in ("preprocess.yaml", "analyze.yaml"):
        spec = load(repo_root / "pipelines" / name)
        for step in spec.steps.values():
            assert not step.implicit_inputs, step.name
            if step.sql is not None:
                sql_steps += 1
                assert set(sql_tables(step.sql)) == set(step.inputs), step.name
    assert sql_steps >= 3


CTE_AND_QUALIFIED = """
pipeline: demo
steps:
  best: {{sql: SELECT 1 AS id}}
  trades: {{sql: SELECT 2 AS id}}
  reader:
    sql: |
      WITH best AS (SELECT * FROM {source})
      SELECT * FROM best JOIN db.trades USING (id) JOIN parquet.`/some/path` USING (id)
"""


def test_cte_names_and_qualified_names_are_not_steps(write_spec):
    spec = load(write_spec(CTE_AND_QUALIFIED.format(source="range(3)")))
    assert dict(spec.steps["reader"].inputs) == {} and spec.steps["reader"].implicit_inputs == ()
    spec = load(write_spec(CTE_AND_QUALIFIED.format(source="trades")))
    assert list(spec.steps["reader"].inputs) == ["trades"]  # the CTE reads the step 'trades'; 'best' is the CTE


UNPARSABLE = """
pipeline: demo
modules: [{mod}]
steps:
  nums: {{transform: t_numbers}}
  s:
    sql: {sql}
    {inputs}
"""


def test_sql_sqlglot_cannot_parse_loads_when_the_step_declares_its_inputs(write_spec, test_transforms_module):
    """Spark's own parser decides at run time: a sqlglot gap must not block valid Spark SQL."""
    for sql in ("SELECT v:a.b[0] AS x FROM src", "SELECT (id FROM src"):  # variant path (valid Spark 4), a typo
        for inputs in ("inputs: {src: nums}", "inputs: {}"):
            spec = load(write_spec(UNPARSABLE.format(mod=test_transforms_module, sql=sql, inputs=inputs)))
            assert spec.steps["s"].implicit_inputs == () and set(spec.steps["s"].inputs) <= {"src"}


def test_sql_sqlglot_cannot_parse_is_an_error_without_declared_inputs(write_spec, test_transforms_module):
    path = write_spec(UNPARSABLE.format(mod=test_transforms_module, sql="SELECT (id FROM nums", inputs=""))
    problems = problems_of(path)
    assert len(problems) == 1, problems
    head, _, tail = problems[0].partition(" at SQL line 1, column ")
    assert head.startswith(f"{path}:6: steps.s.sql: cannot tell which tables this SQL reads: sqlglot (Spark "
                           "dialect) cannot parse it: "), head  # then sqlglot's own words: Invalid expression ...
    assert tail.endswith(" near 'FROM'; if it is valid Spark SQL, declare the tables it reads under 'inputs:' "
                         "('inputs: {}' if it reads none), and Spark's own parser checks it at run time"), tail


def test_a_cycle_through_a_sql_read_by_name_is_explained(write_spec):
    path = write_spec("pipeline: demo\nsteps:\n  a:\n    sql: SELECT * FROM b\n  b:\n    sql: SELECT 1 AS x\n"
                      "    depends_on: [a]\n")
    assert problems_of(path) == [f"{path}:3: steps.a: dependency cycle: a -> b -> a (a's SQL reads b by its step "
                                 "name)"]


NOT_A_QUERY = ("a SQL step must be exactly one query (SELECT ..., WITH ... SELECT ..., VALUES ..., TABLE t): Spark "
               "runs any other statement at once, outside the step's staged and checked write")
STATEMENT = """
pipeline: demo
steps:
  a:
    sql: "{sql}"
    inputs: {{}}
"""


@pytest.mark.parametrize("sql,what", [
    ("INSERT OVERWRITE DIRECTORY '/x' USING parquet SELECT 1 AS x",  # sqlglot cannot parse it
     "starts with INSERT, not with SELECT, WITH, FROM, VALUES, TABLE or '('"),
    ("SELEC id FROM range(3)", "starts with SELEC, not with SELECT, WITH, FROM, VALUES, TABLE or '('"),
    ("CREATE TABLE t USING parquet AS SELECT 1 AS x", "is a CREATE TABLE statement"),
    ("WITH a AS (SELECT 1 AS x) INSERT INTO t SELECT * FROM a", "is an INSERT statement"),
    ("FROM range(3) INSERT INTO t SELECT id", "is an INSERT statement"),
    ("SET spark.sql.shuffle.partitions=1", "is a SET statement"),
    ("DROP TABLE t", "is a DROP TABLE statement"),
    ("SELECT 1 AS x; DROP TABLE t", "holds 2 statements"),
    ("CACHE TABLE t", "is a CACHE statement"),
    ("MSCK REPAIR TABLE t", "is a MSCK REPAIR statement"),
    (";", "holds no statement"),
])
def test_a_sql_step_that_is_not_exactly_one_query_is_an_error(write_spec, sql, what):
    """`spark.sql` runs such a statement at once: INSERT OVERWRITE DIRECTORY emptied a folder outside the
    warehouse while validate said OK."""
    path = write_spec(STATEMENT.format(sql=sql))
    assert problems_of(path) == [f"{path}:4: steps.a.sql: this SQL {what}; {NOT_A_QUERY}"]


@pytest.mark.parametrize("sql", [
    "SELECT 1 AS x;", "WITH a AS (SELECT 1 AS x) SELECT * FROM a", "(SELECT 1 AS x) UNION ALL (SELECT 2)",
    "VALUES (1), (2)", "TABLE t", "FROM range(3) SELECT id", "-- a comment\\nSELECT 'INSERT INTO t' AS x",
    "WITH a AS (SELECT 1 AS insert) SELECT insert FROM a",
])
def test_a_sql_step_that_is_one_query_loads(write_spec, sql):
    assert load(write_spec(STATEMENT.format(sql=sql))).steps["a"].sql


CATCH_UP = """
pipeline: analyze
{requires}
catch_up: {{upstream: {upstream}}}
steps:
  a: {{sql: SELECT 1 AS x}}
"""


@pytest.mark.parametrize("requires,upstream,words,hint", [
    ("requires: [preprocess]", "preproces", "(requires: preprocess)", "; did you mean 'preprocess'?"),
    ("", "preprocess", "(requires: none)", ""),
])
def test_a_catch_up_upstream_that_the_spec_does_not_require_is_an_error(write_spec, requires, upstream, words,
                                                                        hint):
    """A typo there offered no date: every run without --date said "nothing to do" for ever, exit 0."""
    path = write_spec(CATCH_UP.format(requires=requires, upstream=upstream))
    assert problems_of(path) == [f"{path}:3: catch_up.upstream: '{upstream}' is not a pipeline this spec requires "
                                 f"{words}; a catch-up takes the dates of a required upstream pipeline{hint}"]
    fixed = CATCH_UP.format(requires="requires: [preprocess]", upstream="preprocess")
    assert load(write_spec(fixed)).catch_up == {"upstream": "preprocess"}


SHAPE = """
pipeline: demo
steps:
  trades: {{sql: SELECT 1 AS x}}
  s:
    sql: SELECT * FROM trades
    {key}
"""


@pytest.mark.parametrize("key,where,words", [
    ("inputs: [trades]", "steps.s.inputs", "expected object, got list ['trades']"),
    ("inputs: trades", "steps.s.inputs", "expected object, got str 'trades'"),
    ("outputs: [o]", "steps.s.outputs", "expected object, got list ['o']"),
    ("params: [top_n: 5]", "steps.s.params", "expected object, got list [{'top_n': 5}]"),
    ("params: top_n=5", "steps.s.params", "expected object, got str 'top_n=5'"),
    ("params: 5", "steps.s.params", "expected object, got int 5"),
    ("depends_on: 5", "steps.s.depends_on", "expected array, got int 5"),
    ("outputs: {o: {path: p, partition_by: 5}}", "steps.s.outputs.o.partition_by", "expected array, got int 5"),
    ("outputs: {o: {path: p, partition_by: [d], replace_partitions: ['{{ date }}']}}",
     "steps.s.outputs.o.replace_partitions", "expected object, got list ['2024-01-05']"),
    ("outputs: {o: {path: p, partition_by: [d], replace_partitions: 5}}", "steps.s.outputs.o.replace_partitions",
     "expected object, got int 5"),
])
def test_a_value_of_the_wrong_shape_is_a_schema_error_not_a_crash(write_spec, key, where, words):
    """The step checks used to run after the schema had found these, and crashed on them (a traceback, exit 1)."""
    path = write_spec(SHAPE.format(key=key))
    assert problems_of(path) == [f"{path}:6: {where}: {words}"]


def test_every_shape_error_is_reported_and_nothing_after_them(write_spec):
    path = write_spec(SHAPE.format(key="inputs: [trades]\n    depends_on: 5\n    outputs: {o: {path: p}}\n"
                                       "  t: {transform: no_such_transform}"))
    assert problems_of(path) == [f"{path}:6: steps.s.inputs: expected object, got list ['trades']",
                                 f"{path}:7: steps.s.depends_on: expected array, got int 5"]


@pytest.mark.parametrize("encoding,line,byte", [("latin-1", 2, "0xe9"), ("utf-16", 1, "0xff")])
def test_a_spec_that_is_not_utf8_is_named(tmp_path, encoding, line, byte):
    path = tmp_path / "spec.yaml"
    path.write_bytes("pipeline: demo\n# café\nsteps:\n  s: {sql: SELECT 1}\n".encode(encoding))
    assert problems_of(path) == [f"{path}:{line}: the spec is not UTF-8 text (byte {byte}); save it as UTF-8"]


# -- follow-on problems that are not mistakes of their own ------------------------------------------------------

def test_a_step_with_both_sql_and_transform_still_names_a_step_for_inputs_depends_on_and_charts(write_spec):
    path = write_spec("""
pipeline: demo
steps:
  both:
    sql: SELECT 1 AS x
    transform: read_dataset
  reader:
    sql: SELECT * FROM both
    depends_on: [both]
    inputs: {both: both.out}
    outputs: {o: {path: out/reader}}
report:
  charts:
    - {title: Both, source: both, x: x, y: x}
""")
    assert problems_of(path) == [f"{path}:3: steps.both: a step needs exactly one of 'transform' (a registered "
                                 "transform) or 'sql'"]


def test_a_step_of_an_unknown_transform_gets_no_problem_about_its_outputs(write_spec):
    path = write_spec("""
pipeline: demo
steps:
  imbalance:
    transform: trade_imbalanse
    outputs:
      imbalance: {path: out/imbalance}
      signed: {path: out/signed}
  reader:
    sql: SELECT * FROM signed
    inputs: {signed: imbalance.signed}
""")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:4: steps.imbalance.transform: unknown transform 'trade_imbalanse'")


def test_a_module_that_registers_no_transform_is_named_with_the_module_that_would(write_spec, tmp_path, monkeypatch):
    """The usual slip: the package named instead of its module (modules: [my_metrics], not my_metrics.transforms)."""
    package = tmp_path / "plugins" / "tf_pkg_metrics"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""Metrics."""\n')
    (package / "helpers.py").write_text("X = 1\n")
    (package / "transforms.py").write_text("from engine.registry import transform\n\n"
                                           "@transform('t_pkg_metric', description='x')\n"
                                           "def t(ctx, inputs, params):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    path = write_spec("pipeline: demo\nmodules: [tf_pkg_metrics]\nsteps:\n  a: {sql: SELECT 1}\n")
    assert problems_of(path) == [f"{path}:2: modules[0]: module 'tf_pkg_metrics' registered no transforms: it is a "
                                 "package, whose modules are not imported; did you mean its module "
                                 "'tf_pkg_metrics.transforms'?"]
    load(write_spec("pipeline: demo\nmodules: [tf_pkg_metrics.transforms]\nsteps:\n  a: {sql: SELECT 1}\n"))


# -- vars ---------------------------------------------------------------------------------------------------

def test_a_non_integer_var_given_to_a_date_filter_is_named(write_spec):
    path = write_spec('pipeline: demo\nvars:\n  lookback: 3\n  start: "{{ date | days_before(vars.lookback) }}"\n'
                      'steps:\n  a: {sql: "SELECT \'{{ vars.start }}\' AS d"}\n')
    assert problems_of(path, var_overrides=parse_var_overrides(["lookback=x"])) == [
        f"{path}:4: vars.start: template failed: days_before needs a whole number of days, got 'x' from "
        "vars.lookback (the value comes from --var lookback=x)"]


def test_date_arithmetic_gets_the_date_filters_as_a_hint(write_spec):
    path = write_spec('pipeline: demo\nsteps:\n  a: {sql: "SELECT {{ date + 1 }} AS d"}\n')
    assert problems_of(path) == [
        f"{path}:3: steps.a.sql: template failed: can only concatenate str (not \"int\") to str; date and prev_date "
        "are text (YYYY-MM-DD): compute other dates with the filters date | days_before(n), date | days_after(n), "
        "date | previous_days(n)"]


# -- outputs ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("output,words", [
    ("{path: p, partition_by: [trade_date], replace_partitions: {trade_dt: x}}",
     "replace_partitions names trade_dt, which is not in partition_by [trade_date]"),
    ("{path: p, replace_partitions: {trade_dt: x}}",
     "replace_partitions names trade_dt, but the output has no partition_by (add partition_by: [trade_dt])"),
    ("{path: p, partition_by: [day], mode: append, replace_partitions: {day: x}}",
     "replace_partitions needs mode overwrite_partitions (the output's mode is append)"),
])
def test_a_replace_partitions_mistake_says_which_column_or_mode(write_spec, output, words):
    path = write_spec(f"pipeline: demo\nsteps:\n  a:\n    sql: SELECT 1 AS x\n    outputs:\n      o: {output}\n")
    assert problems_of(path) == [f"{path}:6: steps.a.outputs.o.replace_partitions: {words}"]


def test_an_absolute_output_path_is_named_as_such_not_by_the_pattern(write_spec):
    path = write_spec("pipeline: demo\nsteps:\n  a:\n    sql: SELECT 1 AS x\n    outputs:\n"
                      "      o: {path: /tmp/elsewhere}\n")
    assert problems_of(path) == [f"{path}:6: steps.a.outputs.o.path: '/tmp/elsewhere' is an absolute path; a "
                                 "dataset path is relative to the storage root"]
