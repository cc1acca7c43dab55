"""Spec loading: YAML (safe) -> Jinja2 (sandboxed) -> JSON Schema -> semantic checks -> PipelineSpec.

Every problem is collected with ``file:line: key.path: what was expected`` and reported together; nothing
runs until the whole spec is valid.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from engine.config import Config
from engine.dag import CycleError, Dag, dag_of, dataset_edges
from engine.errors import RegistryError, SpecError, SpecFileMissing
from engine.params import params_problems, with_defaults
from engine.registry import REGISTRY, ModuleImportError, Registry, TransformDef
from engine.spec import DATASET_PREFIX, InputRef, OutputSpec, PipelineSpec, StepSpec, path_parts, paths_nest
from engine.spec_problems import Problems, schema_problems
from engine.spec_vars import render_vars
from engine.spec_warnings import warn_unpartitioned
from engine.sql_text import NOT_A_QUERY, SqlParseError, sql_names, sql_statement_problem
from engine.suggest import closest, did_you_mean
from engine.templating import (
    TemplateProblem,
    build_context,
    make_environment,
    public_env,
    render_tree,
)
from engine.yaml_lines import KeyPath, YamlSyntaxError, format_path, load_scalar, load_with_lines

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "pipeline.schema.json"
# A param naming a committed dataset the step reads: its params schema says so with this "format" (as the
# engine's own read_dataset does for its ``path``).
DATASET_PATH_FORMAT = "dataset-path"


def _pipeline_schema() -> Mapping[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def parse_var_overrides(items: list[str] | None) -> dict[str, Any]:
    """``--var key=value`` -> {key: value}; values are read as YAML scalars (30 -> int, a b -> str)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecError([f"--var expects key=value, got '{item}'"])
        try:
            parsed = load_scalar(value)
        except yaml.YAMLError:
            parsed = value
        out[key.strip()] = value if parsed is None or isinstance(parsed, dict | list) else parsed
    return out


def load_spec(
    path: str | os.PathLike[str],
    *,
    date: dt.date | None = None,
    var_overrides: Mapping[str, Any] | None = None,
    config: Config | None = None,
    env: Mapping[str, str] | None = None,
    registry: Registry | None = None,
    warnings: list[str] | None = None,
) -> PipelineSpec:
    """The spec of ``path`` rendered for ``date``; SpecError lists every problem. ``warnings``, when given,
    receives what a valid spec most likely does not mean (``file:line: key.path: why``), for the caller to show."""
    file = str(path)
    config = config or Config()
    registry = registry or REGISTRY
    text = _read_spec_text(path, file)
    try:
        data, lines = load_with_lines(text)
    except YamlSyntaxError as exc:
        where = f"{file}:{exc.line}" if exc.line else file
        raise SpecError([f"{where}: {exc}"]) from None
    problems = Problems(file, lines)
    for dup_path, line in lines.duplicates:
        problems.add(dup_path, "key appears twice in the same mapping", line)
    if not isinstance(data, Mapping):
        problems.add((), "a spec must be a mapping with 'pipeline' and 'steps'", 1)
        problems.raise_if_any()

    # -- templating: vars first (they may use date/config/env), then everything else ------------------
    jenv = make_environment()
    base_ctx = build_context(date, {}, config.template_values(),
                             public_env(os.environ if env is None else env, config.secrets()), config.holidays)
    tproblems: list[TemplateProblem] = []
    raw_vars = data.get("vars") or {}
    overrides = dict(var_overrides or {})
    problems.raw, problems.overrides = data, overrides
    variables: dict[str, Any] = {}
    # what templates see as vars: a var whose template failed is a marker, so a value using it is not reported
    # again (its text would be the var's raw '{{ ... }}' and fail every later check a second time)
    seen_vars: dict[str, Any] = {}
    if isinstance(raw_vars, Mapping):
        variables, seen_vars = render_vars(jenv, raw_vars, overrides, base_ctx, tproblems)
        for key in overrides:
            if key not in raw_vars:
                declared = ", ".join(map(str, raw_vars)) or "none"
                problems.add(("vars",), f"--var {key}: the spec declares no such variable (its vars: {declared})")
    ctx = {**base_ctx, "vars": seen_vars}
    rendered = render_tree(jenv, {k: v for k, v in data.items() if k != "vars"}, ctx, (), tproblems)
    if "vars" in data:
        rendered["vars"] = variables if isinstance(raw_vars, Mapping) else raw_vars
    for tp in tproblems:
        if not tp.derived:  # a derived one was reported at the var it uses
            problems.add(tp.path, str(tp))
    problems.unrendered |= {tp.path for tp in tproblems}

    # -- JSON Schema ---------------------------------------------------------------------------------
    validator = jsonschema.Draft202012Validator(_pipeline_schema())
    for err in sorted(validator.iter_errors(rendered), key=lambda e: list(map(str, e.absolute_path))):
        for epath, message in schema_problems(err):
            problems.add(epath, message)
    # the checks below read the spec's shape (inputs a mapping, depends_on a list...): after a shape error,
    # they would only crash or repeat it
    problems.raise_if_any()

    # -- discovery of transforms ----------------------------------------------------------------------
    modules = tuple(m for m in rendered.get("modules") or [] if isinstance(m, str))
    failed: list[str] = []  # modules that did not import: a transform they define is not "unknown" on top
    try:
        registry.discover(config.modules, where=config.source)
    except RegistryError as exc:
        problems.add((), str(exc), 0)
        failed += [exc.module] if isinstance(exc, ModuleImportError) else []
    for i, module in enumerate(modules):
        try:
            registry.import_module(module, where=file)
        except RegistryError as exc:
            problems.add(("modules", i), str(exc))
            failed += [exc.module] if isinstance(exc, ModuleImportError) else []
            continue
        empty = registry.nothing_registered(module)
        if empty:
            problems.add(("modules", i), empty)

    steps_raw = rendered.get("steps")
    steps: dict[str, StepSpec] = {}
    if isinstance(steps_raw, Mapping):
        steps = _check_steps(steps_raw, registry, problems, failed)  # SQL steps get their implicit inputs here
    unchecked = _unchecked_steps(steps_raw, steps, registry)
    _check_catch_up(rendered, problems)
    _check_graph(steps, problems, unchecked)
    _check_extras(rendered, steps, problems, unchecked)
    problems.raise_if_any()
    warn_unpartitioned(jenv, data, rendered, steps, problems)
    if warnings is not None:
        warnings.extend(problems.warning_lines())
    return PipelineSpec(
        name=rendered["pipeline"],
        file=file,
        steps=steps,
        requires=tuple(rendered.get("requires") or ()),
        reads_earlier_dates=bool(rendered.get("reads_earlier_dates", False)),
        variables=variables,
        modules=modules,
        catch_up=dict(rendered.get("catch_up") or {}),
        charts=tuple((rendered.get("report") or {}).get("charts") or ()),
        description=rendered.get("description", ""),
    )


def _read_spec_text(path: str | os.PathLike[str], file: str) -> str:
    """The spec's text, which must be UTF-8 (a spec saved as Latin-1 or UTF-16 is named, not a traceback)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        where = "" if Path(path).is_absolute() else f" (relative to {Path.cwd()})"
        raise SpecFileMissing([f"{file}: spec file not found{where}"]) from None
    except OSError as exc:
        raise SpecError([f"{file}: cannot read spec: {exc.strerror or exc}"]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise SpecError([f"{file}:{line}: the spec is not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as "
                         "UTF-8"]) from None


def _unchecked_steps(steps_raw: Any, steps: Mapping[str, StepSpec], registry: Registry) -> set[str]:
    """The steps whose outputs cannot be known, their own problem already reported: a step left out as broken
    (both transform and sql) and a step of an unknown transform. A reference to one is not a second mistake."""
    broken = {str(name) for name in steps_raw if name not in steps} if isinstance(steps_raw, Mapping) else set()
    unknown = {name for name, step in steps.items() if step.transform and registry.get(step.transform) is None}
    return broken | unknown


def _check_catch_up(rendered: Mapping[str, Any], problems: Problems) -> None:
    """A catch-up takes the dates of a pipeline the spec ``requires``: any other name (a typo) offers no date,
    and every run without --date would end "nothing to do" for ever."""
    upstream = (rendered.get("catch_up") or {}).get("upstream")
    requires = [str(r) for r in rendered.get("requires") or ()]
    if upstream is None or upstream in requires:
        return
    problems.add(("catch_up", "upstream"), f"'{upstream}' is not a pipeline this spec requires (requires: "
                 f"{', '.join(requires) or 'none'}); a catch-up takes the dates of a required upstream pipeline"
                 f"{_suggest(str(upstream), requires)}")


def _suggest(name: str, options: list[str]) -> str:
    close = closest(name, options)
    return f"; did you mean '{close}'?" if close else ""


def _sql_inputs(name: str, raw: Mapping[str, Any], inputs: Mapping[str, InputRef], step_names: list[str],
                problems: Problems) -> dict[str, InputRef]:
    """Implicit inputs of a SQL step: each table it reads that no input declares must be a step of the
    pipeline, read as ``{table: table}`` (its default output), so it is a dependency and a temp view at run
    time. Any other table is a problem here, before anything runs."""
    where: KeyPath = ("steps", name, "sql")
    declares_inputs = isinstance(raw.get("inputs"), Mapping)
    try:
        tables, ctes = sql_names(raw["sql"])
    except SqlParseError as exc:
        if not declares_inputs:  # with inputs declared, Spark's own parser decides at run time
            problems.add(where, f"cannot tell which tables this SQL reads: sqlglot (Spark dialect) cannot parse "
                         f"it: {exc}; if it is valid Spark SQL, declare the tables it reads under 'inputs:' "
                         "('inputs: {}' if it reads none), and Spark's own parser checks it at run time")
        return {}
    declared = {i.lower() for i in inputs}
    steps_by_name = {s.lower(): s for s in step_names}
    others = [s for s in step_names if s != name]
    implicit: dict[str, InputRef] = {}
    for table in tables:
        step = steps_by_name.get(table)
        if table in declared:
            continue
        if step == name:
            problems.add(where, f"table '{table}' is this step's own name; a step cannot read its own output")
        elif step is not None:
            implicit[step] = InputRef(step=step)
        else:
            problems.add(where, f"table '{table}' is neither an input of this step nor a step of the pipeline "
                         f"(inputs: {', '.join(inputs) or 'none'}; steps: {', '.join(others) or 'none'})"
                         f"{_suggest(table, [*inputs, *others, *ctes])}")
    return implicit


def dataset_params(tdef: TransformDef) -> tuple[str, ...]:
    """The params of ``tdef`` that name a committed dataset the step reads."""
    props = tdef.params_schema.get("properties") or {}
    marked = [name for name, schema in props.items()
              if isinstance(schema, Mapping) and schema.get("format") == DATASET_PATH_FORMAT]
    return tuple(marked)


def dataset_path_problem(path: str, *, output: bool) -> str | None:
    """Why ``path`` cannot name a dataset under the storage root (None: it can).

    An absolute path or a ``..`` component reaches outside the root, where a write would replace (delete) a
    folder. An output path with an empty component (``analytics//x``) is most often a template that rendered
    empty, and would write another dataset than the one meant.
    """
    text = path.strip()
    if text.startswith("/"):
        return f"'{path}' is an absolute path; a dataset path is relative to the storage root"
    parts = text.rstrip("/").split("/")
    if ".." in parts:
        return f"'{path}' has a '..' component; a dataset path must stay under the storage root"
    if output and "" in parts:
        return f"'{path}' has an empty component ('//'); expected name/name/... under the storage root"
    hidden = [part for part in parts if part.startswith(("_", ".")) and part != "."]
    if output and hidden:  # Spark's readers skip such names, and the engine keeps _reports/ and staging there
        return (f"'{path}' has a component starting with '{hidden[0][0]}' ('{hidden[0]}'): such names are hidden "
                f"from Spark's readers and reserved for the engine (_reports, .tickflow_staging); name the "
                f"dataset without it")
    return None


def _check_dataset_reads(base: KeyPath, raw: Mapping[str, Any], params: Mapping[str, Any],
                         tdef: TransformDef | None, problems: Problems) -> tuple[str, ...]:
    """Dataset paths a step reads must stay under the storage root; returns the step's dataset params."""
    for iname, ref in (raw.get("inputs") or {}).items():
        text = ref.strip() if isinstance(ref, str) else ""
        if text.startswith(DATASET_PREFIX) and text[len(DATASET_PREFIX):].strip():
            why = dataset_path_problem(text[len(DATASET_PREFIX):], output=False)
            if why:
                problems.add((*base, "inputs", iname), why)
    names = dataset_params(tdef) if tdef is not None else ()
    for name in names:
        value = params.get(name)
        why = dataset_path_problem(value, output=False) if isinstance(value, str) else None
        if why:
            problems.add((*base, "params", name), why)
    return names


def _check_steps(steps_raw: Mapping[str, Any], registry: Registry, problems: Problems,
                 failed_modules: Sequence[str] = ()) -> dict[str, StepSpec]:
    steps: dict[str, StepSpec] = {}
    for name, raw in steps_raw.items():
        base: KeyPath = ("steps", name)
        if not isinstance(raw, Mapping):
            continue  # the schema already said so
        has_t, has_s = "transform" in raw, "sql" in raw
        if has_t == has_s:
            problems.add(base, "a step needs exactly one of 'transform' (a registered transform) or 'sql'")
            continue
        tdef = None
        params = dict(raw.get("params") or {})
        if has_t:
            tname = raw["transform"]
            tdef = registry.get(tname) if isinstance(tname, str) else None
            # a transform of a module that failed to import is explained by that failure: no second problem
            if tdef is None and not (failed_modules and registry.failed_import_for(str(tname), failed_modules)):
                problems.add((*base, "transform"), f"unknown transform '{tname}'"
                             f"{_suggest(str(tname), registry.names())} (see `run_pipeline.py list-transforms`)")
            elif tdef is not None:
                for ppath, message in params_problems(tdef.params_schema, params):
                    problems.add((*base, "params", *ppath), message)
                params = with_defaults(tdef.params_schema, params)
        elif raw.get("params"):
            problems.add((*base, "params"), "SQL steps take no params; use vars and {{ }} templates instead")
        inputs: dict[str, InputRef] = {}
        for iname, ref in (raw.get("inputs") or {}).items():
            if isinstance(ref, str):
                inputs[iname] = InputRef.parse(ref)
        implicit: dict[str, InputRef] = {}
        if has_s and isinstance(raw["sql"], str) and not problems.is_unrendered((*base, "sql")):
            not_a_query = sql_statement_problem(raw["sql"])
            if not_a_query:
                problems.add((*base, "sql"), f"this SQL {not_a_query}; {NOT_A_QUERY}")
            else:
                implicit = _sql_inputs(name, raw, inputs, [str(s) for s in steps_raw], problems)
                inputs.update(implicit)
        if tdef is not None and tdef.inputs is not None:
            missing = [i for i in tdef.inputs if i not in inputs]
            extra = [i for i in inputs if i not in tdef.inputs]
            if missing:
                problems.add((*base, "inputs"), f"transform '{tdef.name}' needs input(s) {', '.join(missing)}; "
                             f"expected inputs: {', '.join(tdef.inputs) or 'none'}")
            for i in extra:
                problems.add((*base, "inputs", i), f"transform '{tdef.name}' takes no input '{i}'"
                             f"{did_you_mean(i, missing)}; expected inputs: {', '.join(tdef.inputs) or 'none'}")
        outputs: dict[str, OutputSpec] = {}
        for oname, out in (raw.get("outputs") or {}).items():
            if not isinstance(out, Mapping) or "path" not in out:
                continue
            part = tuple(out.get("partition_by") or ())
            mode = out.get("mode") or ("overwrite_partitions" if part else "overwrite")
            if mode == "overwrite_partitions" and not part:
                problems.add((*base, "outputs", oname, "mode"), "overwrite_partitions needs partition_by")
            owned = dict(out.get("replace_partitions") or {})
            replace: tuple[str, ...] = ()
            if owned:
                why_not = _replace_partitions_problem(part, owned, mode)
                if why_not:
                    problems.add((*base, "outputs", oname, "replace_partitions"), why_not)
                else:
                    replace = ("/".join(f"{c}={owned[c]}" for c in part),)
            why = dataset_path_problem(str(out["path"]), output=True)
            if why:
                problems.add((*base, "outputs", oname, "path"), why)
            outputs[oname] = OutputSpec(oname, str(out["path"]).strip("/"), part, mode, replace)
        declared = tdef.outputs if tdef is not None else ("out",)
        if tdef is not None and tdef.multi_output:
            for oname in outputs:
                if oname not in declared:
                    problems.add((*base, "outputs", oname), f"transform '{tdef.name}' has no output '{oname}'; "
                                 f"its outputs are: {', '.join(declared)}")
        elif len(outputs) > 1 and (tdef is not None or has_s):  # an unknown transform's outputs are unknown too
            problems.add((*base, "outputs"), f"this step produces one DataFrame; declare at most one output "
                         f"(got {', '.join(outputs)})")
        deps = tuple(d for d in raw.get("depends_on") or () if isinstance(d, str))
        read_params = _check_dataset_reads(base, raw, params, tdef, problems)
        steps[name] = StepSpec(
            name=name, transform=raw.get("transform"), sql=raw.get("sql"), inputs=inputs, params=params,
            outputs=outputs, depends_on=deps, cache=raw.get("cache", "auto"),
            expectations=tuple(raw.get("expectations") or ()), description=raw.get("description", ""),
            line=problems.lines.line_of(base), declared_outputs=tuple(declared), implicit_inputs=tuple(implicit),
            dataset_params=read_params,
        )
    return steps


def _replace_partitions_problem(part: tuple[str, ...], owned: Mapping[str, Any], mode: str) -> str | None:
    """Why ``replace_partitions`` cannot name the partition an output's run owns (None: it can)."""
    unknown = [str(c) for c in owned if c not in part]
    if not part:
        return (f"replace_partitions names {', '.join(unknown)}, but the output has no partition_by (add "
                f"partition_by: [{', '.join(unknown)}])")
    if unknown:
        which = "which is" if len(unknown) == 1 else "which are"
        return f"replace_partitions names {', '.join(unknown)}, {which} not in partition_by [{', '.join(part)}]"
    missing = [c for c in part if c not in owned]
    if missing:
        return (f"replace_partitions needs a value for each partition_by column ({', '.join(part)}); it has none "
                f"for {', '.join(missing)}")
    if mode != "overwrite_partitions":
        return f"replace_partitions needs mode overwrite_partitions (the output's mode is {mode})"
    return None


def _check_output_paths(steps: Mapping[str, StepSpec], problems: Problems) -> None:
    """No two outputs may write one dataset, nor one inside the other (compared by path component):
    overwriting ``mine`` deletes ``mine/small_trades`` written by another step, whatever the order."""
    written: list[tuple[tuple[str, ...], str, OutputSpec]] = []
    for step in steps.values():
        for oname, out in step.outputs.items():
            parts = path_parts(out.path)
            where: KeyPath = ("steps", step.name, "outputs", oname, "path")
            for prior_parts, prior_step, prior in written:
                if not paths_nest(parts, prior_parts):
                    continue
                by = f"steps.{prior_step}.outputs.{prior.name}"
                if parts == prior_parts:
                    who = "two outputs of one step" if prior_step == step.name else "two steps"
                    problems.add(where, f"output path '{out.path}' is also written by {by}; {who} cannot "
                                 f"write one dataset")
                    continue
                inner, outer = (out, prior) if len(parts) > len(prior_parts) else (prior, out)
                relation = "lies inside" if inner is out else "contains"
                harm = (f"overwriting '{outer.path}' deletes '{inner.path}'" if outer.mode == "overwrite" else
                        f"'{inner.path}' would be read as part of '{outer.path}'")
                problems.add(where, f"output path '{out.path}' {relation} '{prior.path}', written by {by}; "
                             f"one dataset cannot hold another ({harm})")
            written.append((parts, step.name, out))


def _check_graph(steps: Mapping[str, StepSpec], problems: Problems, unchecked: set[str]) -> None:
    before = len(problems.items)
    _check_output_paths(steps, problems)
    for step in steps.values():
        base: KeyPath = ("steps", step.name)
        for iname, ref in step.inputs.items():
            if ref.dataset is not None:
                if not ref.dataset:
                    problems.add((*base, "inputs", iname), "empty dataset reference; expected dataset:<path>")
                continue
            if ref.step in unchecked and (ref.step not in steps or ref.output is not None):
                continue  # the step's own problem is reported
            if ref.step not in steps:
                problems.add((*base, "inputs", iname), f"input refers to '{ref}', which names no step"
                             f"{_suggest(str(ref.step), list(steps))}; expected a step name, step.output, "
                             f"or dataset:<path>")
            elif ref.step == step.name:
                problems.add((*base, "inputs", iname), "a step cannot read its own output")
            elif ref.output is not None and ref.output not in steps[ref.step].output_names():
                problems.add((*base, "inputs", iname), f"step '{ref.step}' has no output '{ref.output}'; "
                             f"its outputs are: {', '.join(steps[ref.step].output_names())}")
        for i, dep in enumerate(step.depends_on):
            if dep not in steps and dep not in unchecked:
                problems.add((*base, "depends_on", i), f"depends on '{dep}', which names no step"
                             f"{_suggest(dep, list(steps))}")
    if len(problems.items) > before:
        return
    try:
        dag = dag_of(steps)
        dag.order()
    except CycleError as exc:
        dataset_reads = dataset_edges(steps)
        why: list[str] = []  # the edges no input or depends_on spells out
        for writer, reader in zip(exc.cycle, exc.cycle[1:], strict=False):
            if writer in steps[reader].implicit_inputs:
                why.append(f"{reader}'s SQL reads {writer} by its step name")
            elif (writer, reader) in dataset_reads and writer not in steps[reader].upstream_steps():
                why.append(f"{reader} reads dataset:{dataset_reads[writer, reader]}, which {writer} writes")
        problems.add(("steps", exc.cycle[0]), str(exc) + (f" ({'; '.join(why)})" if why else ""))
        return
    _check_own_inputs(steps, dag, problems)


def _check_own_inputs(steps: Mapping[str, StepSpec], dag: Dag, problems: Problems) -> None:
    """No output may overwrite a dataset the pipeline reads (the same, one inside it, or one around it),
    unless every step reading it runs after the writer and so reads this run's version (a ``dataset:`` input
    written by another step of the spec). Otherwise the step replaces its own input: a SQL step writing
    ``trade`` replaces every date of the warehouse's trades with one day's query result."""
    for reader in steps.values():
        for read_at, read in reader.dataset_reads():
            read_parts = path_parts(read)
            for writer in steps.values():
                if writer.name != reader.name and writer.name in dag.upstream(reader.name):
                    continue  # the reader runs after the writer: it reads what this run wrote
                for oname, out in writer.outputs.items():
                    parts = path_parts(out.path)
                    if read_parts and paths_nest(parts, read_parts):
                        problems.add(("steps", writer.name, "outputs", oname, "path"),
                                     _overwrites_input(out.path, parts, read, read_parts, read_at, reader, writer,
                                                       dag))


def _overwrites_input(path: str, parts: tuple[str, ...], read: str, read_parts: tuple[str, ...],
                      read_at: KeyPath, reader: StepSpec, writer: StepSpec, dag: Dag) -> str:
    """The problem of an output ``path`` that nests with a dataset ``read`` by ``reader``."""
    what = ("is a dataset" if parts == read_parts else
            f"{'lies inside' if len(parts) > len(read_parts) else 'contains'} '{read}', a dataset")
    text = f"'{path}' {what} this pipeline reads ({format_path(read_at)})"
    if reader.name == writer.name or reader.name in dag.upstream(writer.name):
        return f"{text}; a step must not overwrite its own input"
    return (f"{text}, and step '{reader.name}' does not run after this step, so it may read either version; a "
            f"pipeline must not overwrite its own input (read this step's output as an input of "
            f"'{reader.name}' instead)")


def _check_extras(rendered: Mapping[str, Any], steps: Mapping[str, StepSpec], problems: Problems,
                  unchecked: set[str]) -> None:
    """Expectations and charts are validated by their own modules; every bad item is reported at its line."""
    for step in steps.values():
        if step.expectations:
            _check_expectations(step, problems)
    charts = (rendered.get("report") or {}).get("charts") or []
    if charts:
        _check_charts(list(charts), steps, problems, unchecked)


def _item_name(item: Any, key: str) -> str | None:
    value = item.get(key) if isinstance(item, Mapping) else None
    return value if isinstance(value, str) and value.strip() else None


def _item_problems(base: KeyPath, items: list[Any], errors: list[Any], kind: str, label: str,
                   problems: Problems) -> None:
    """Each bad item of a list (expectations, charts) at its own line and key, named by its ``label`` key."""
    for err in errors:
        if err.index is None:
            problems.add(base, err.detail)
            continue
        name = _item_name(items[err.index], label)
        where: KeyPath = (*base, err.index, *((err.key,) if err.key else ()))
        problems.add(where, f"{kind} '{name}': {err.detail}" if name else err.detail)


def _check_expectations(step: StepSpec, problems: Problems) -> None:
    """Expectations run on what a step writes: on a step without outputs, or naming an output the step does
    not write, they would silently never run."""
    from engine.expectations import expectation_problems

    base: KeyPath = ("steps", step.name, "expectations")
    if not step.outputs:
        problems.add(base, "this step writes no outputs, so its expectations would never run; expectations "
                     "belong on a step with outputs (add one, or move them to the step that writes the data)")
    items = list(step.expectations)
    good, errors = expectation_problems(items)
    _item_problems(base, items, errors, "expectation", "name", problems)
    if not step.outputs:
        return
    written = list(step.outputs)
    for i, exp in good:
        if exp.output is None or exp.output in written:
            continue
        hint = (f" (transform '{step.transform}' returns it, but the step does not write it)"
                if exp.output in step.declared_outputs and step.transform else _suggest(exp.output, written))
        problems.add((*base, i, "output"), f"expectation '{exp.name}' checks output '{exp.output}', which this "
                     f"step does not write{hint}; its outputs are: {', '.join(written)}")


def _check_charts(charts: list[Any], steps: Mapping[str, StepSpec], problems: Problems, unchecked: set[str]
                  ) -> None:
    """Every chart must parse and its source must resolve: a chart reading a step or output that is not
    there would only show up as a missing picture in the report of a finished run."""
    from engine.charts import chart_problems

    base: KeyPath = ("report", "charts")
    good, errors = chart_problems(charts)
    _item_problems(base, charts, errors, "chart", "title", problems)
    for i, chart in good:
        if chart.source_kind == "dataset" or chart.step in unchecked:
            # a committed dataset may be written by another pipeline (`plan` tells whether it exists); an unchecked
            # step has its own problem
            continue
        where = (*base, i, "source")
        step = steps.get(str(chart.step))
        if step is None:
            problems.add(where, f"chart '{chart.title}': source '{chart.source}' names no step"
                         f"{_suggest(str(chart.step), list(steps))}; expected a step, step.output, "
                         "metrics:<step>.<key> or dataset:<path>")
        elif chart.output is not None and chart.output not in step.output_names():
            problems.add(where, f"chart '{chart.title}': source '{chart.source}': step '{step.name}' has no output "
                         f"'{chart.output}'{_suggest(chart.output, step.output_names())}; its outputs are: "
                         f"{', '.join(step.output_names())}")
