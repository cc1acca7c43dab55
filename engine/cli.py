"""Command line: parses arguments and hands over to the engine. Exit codes are the contract.

  0 success or nothing to do   1 a step failed   2 usage, spec, config or infrastructure error
  3 upstream job not successful for that date    4 the job is already running elsewhere
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from engine import errors
from engine.config import Config, load_config
from engine.console_out import ConsoleOut, clip
from engine.dates import (
    candidate_dates,
    check_raw_folders,
    job_dates,
    no_new_raw_dates,
    no_upstream_dates,
    parse_date,
    trading_days,
)
from engine.errors import EXIT_OK, EXIT_STEP_FAILED, EXIT_USAGE, SpecError, SpecFileMissing, TickflowError
from engine.logs import FILE_ONLY, SecretMasker
from engine.outputs_present import PartitionLister, gone_outputs, incomplete_job, incomplete_upstream
from engine.raw_inputs import RawStamper, changed_raw
from engine.registry import REGISTRY
from engine.spec import PipelineSpec
from engine.spec_loader import dag_of, load_spec, parse_var_overrides
from engine.tracker.base import Terminated, outdated_by, parse_job_id, pipeline_job_id, upstream_rows

log = logging.getLogger("tickflow.cli")
SUBCOMMANDS = ("run", "validate", "plan", "graph", "list-transforms", "status", "unlock", "forget")

EPILOG = """\
commands:
  run_pipeline.py SPEC [--date D | --start D1 --end D2]   run a pipeline (the default command)
  run_pipeline.py validate SPEC...                         check specs without running anything
  run_pipeline.py plan SPEC [--date D | --start D1 --end D2]  dry run: order, inputs, outputs, params, locks
  run_pipeline.py graph SPEC [--format mermaid|dot]        print the step graph
  run_pipeline.py list-transforms                          registered transforms with their params
  run_pipeline.py status [--pipeline P] [--audit]          job_tracker rows (--audit: who unlocked or forgot what)
  run_pipeline.py unlock JOB_ID [--yes]                    clear a stale lock
  run_pipeline.py forget JOB_ID [--yes]                    delete a mistaken job's rows (e.g. a mistyped date)

exit codes: 0 success or nothing to do, 1 a step failed, 2 usage/spec/config error or tracker
            database unusable, 3 upstream job not successful for the date, 4 the job is already
            running; 130 interrupted (Ctrl-C), 143 terminated (SIGTERM)
Use `run_pipeline.py COMMAND --help` for the options of each command.
"""


SPEC_HELP = "pipeline spec (YAML), e.g. pipelines/preprocess.yaml"


def _date(text: str) -> dt.date:
    try:
        return parse_date(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got '{text}'") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text}")
    return value


def _var(text: str) -> str:
    if "=" not in text or not text.partition("=")[0].strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got '{text}'")
    return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _common(p: argparse.ArgumentParser, *, dates: bool = True) -> None:
    _config_option(p)
    p.add_argument("--var", action="append", metavar="NAME=VALUE", default=[], type=_var,
                   help="override a variable the spec declares under vars (repeatable); the value is read as a "
                   "YAML scalar (30 is a number, '30 minutes' text)")
    if dates:
        p.add_argument("--date", type=_date, metavar="YYYY-MM-DD", help="processing date")


def _config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="INI config ([postgres], [azure], [spark], [storage], "
                   "[tracker], [pipeline]); default $TICKFLOW_CONFIG, else embedded defaults (local storage, "
                   "SQLite tracker, Spark local[*])")


def _range_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", type=_date, metavar="YYYY-MM-DD", help="first date of a backfill")
    p.add_argument("--end", type=_date, metavar="YYYY-MM-DD", help="last date of a backfill (inclusive)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_pipeline.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run declarative Spark pipelines for equity market data.", epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a pipeline for a date, a date range, or catch up",
                         formatter_class=argparse.RawDescriptionHelpFormatter, description=(
                             "Run SPEC. With --date: that date. With --start/--end: a backfill over every "
                             "date in the range that has input, oldest first. With neither: catch up on every "
                             "date found in the input that has not yet succeeded."))
    run.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    _common(run)
    _range_options(run)
    run.add_argument("--select", action="append", default=[], metavar="SEL",
                     help="run only these steps: 'step' (its upstream steps feed it without writing), "
                     "'+step' (with its upstream steps), 'step+' (with its downstream steps); repeatable")
    run.add_argument("--force", action="store_true",
                     help="run even if the job already succeeded, and recompute steps that succeeded before")
    run.add_argument("--wait-for-upstream", type=_seconds, default=0.0, metavar="SECONDS",
                     help="wait up to SECONDS for required upstream jobs to succeed (default: fail at once)")
    run.add_argument("--keep-going", action="store_true",
                     help="in a backfill, go on with the next date after a failure (default: stop)")
    run.add_argument("--parallel-steps", type=_positive_int, metavar="N",
                     help="run up to N steps at once when neither needs the other's output (default: "
                     "[pipeline] parallel_steps, else 2; 1 runs the steps one after another)")
    run.add_argument("--dry-run", action="store_true",
                     help="show the plan of each date the run would process (as the plan command) and exit; "
                     "touches no data")
    run.add_argument("--quiet", action="store_true", help="only warnings, errors and the final summary")
    run.add_argument("--log-format", choices=("text", "json"), default="text",
                     help="console log format (json: one object per line, for schedulers)")

    val = sub.add_parser("validate", help="validate specs (YAML, templates, schema, transforms, graph)",
                         description="Load each SPEC as a run would (YAML, templates, JSON Schema, transforms and "
                         "their params, inputs, outputs, cycles) and list every problem as file:line: key.path: "
                         "what was expected. Runs nothing; exit 2 when a spec is invalid.")
    val.add_argument("specs", nargs="+", metavar="SPEC", help=SPEC_HELP)
    val.add_argument("--spark", action="store_true",
                     help="also parse every SQL text (queries, expectation exprs, read_dataset where) with Spark's "
                     "own parser, as a run does before its first step; starts a local Spark JVM (a few seconds). "
                     "Without it, SQL that sqlglot cannot read is listed as a note, not checked")
    _common(val)

    plan = sub.add_parser("plan", help="dry run: what would run, in which order, with what",
                          description="Show what a run with the same arguments would do, date by date: the "
                          "job's tracker state and the verdict (run, skip, exit 3 or 4), each step with its "
                          "inputs, outputs and rendered params. Without --date: the dates a catch-up would "
                          "process. Touches no data and starts no Spark.")
    plan.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    _common(plan)
    _range_options(plan)
    plan.add_argument("--select", action="append", default=[], metavar="SEL", help="as for run")
    plan.add_argument("--force", action="store_true", help="plan as if --force were given")

    graph = sub.add_parser("graph", help="print the step graph as Mermaid or Graphviz DOT",
                           description="Print the step graph (edges from inputs and depends_on) as text to paste "
                           "into a Mermaid or Graphviz renderer.")
    graph.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    _common(graph)
    graph.add_argument("--format", choices=("mermaid", "dot"), default="mermaid",
                       help="mermaid (default; renders in GitHub and most wikis) or dot (Graphviz)")

    lt = sub.add_parser("list-transforms", help="list registered transforms, descriptions and params",
                        description="List every registered transform (the built-in ones, the plugins of "
                        "transforms/, and those of the [pipeline] modules of the config) with its description, "
                        "inputs, outputs and params (type, default, meaning). A `sql:` step needs no transform: "
                        "its inputs are temp views by their input names.")
    _config_option(lt)
    lt.add_argument("--module", action="append", default=[], metavar="MODULE",
                    help="also import this Python module to register its transforms")
    lt.add_argument("--json", action="store_true", help="machine-readable output")

    from engine.tracker.commands import add_forget_arguments, add_status_arguments, add_unlock_arguments

    st = sub.add_parser("status", help="show job_tracker rows, or with --audit every unlock and forget",
                        description="Show the job_tracker rows of the configured tracker (the [tracker] section: "
                        "a SQLite file, by default .tickflow/job_tracker.sqlite under the working directory, or "
                        "PostgreSQL): each job's status, when it started and ended, who holds its lock and until "
                        "when, and its message. Changes nothing.")
    _config_option(st)
    add_status_arguments(st)
    un = sub.add_parser("unlock", help="clear a job's lock (asks for confirmation unless --yes)",
                        description="Clear the lock of a job whose run died without releasing it (a killed "
                        "process, a lost machine), so that the next run need not wait for the lease to expire. "
                        "Shows the holder, whether its lease expired and whether its process still runs on this "
                        "host, then asks. The job becomes failed (if it was running) and its step rows still "
                        "running become failed with it; the next run resumes the steps that succeeded. Every "
                        "unlock is recorded (status --audit). Exit 0 done or not locked, 1 declined, 2 unknown "
                        "job.")
    _config_option(un)
    add_unlock_arguments(un)
    fg = sub.add_parser("forget", help="delete a job's row and its steps' rows, e.g. of a mistyped date (asks "
                        "for confirmation unless --yes)",
                        description="Delete a pipeline job's row and its steps' rows, as if it never ran: for a "
                        "date that should not have been run (a mistyped or non-trading date) whose failed job "
                        "would otherwise stop the pipelines that require it. Data already written is left as it "
                        "is. Every forget is recorded with the rows it deleted (status --audit). Exit 0 done, "
                        "1 declined, 2 unknown job or a step's id, 4 the job is locked (unlock it first).")
    _config_option(fg)
    add_forget_arguments(fg)
    return parser


def normalise_argv(argv: Sequence[str]) -> list[str]:
    """``run_pipeline.py SPEC ...`` means ``run_pipeline.py run SPEC ...``."""
    argv = list(argv)
    if argv and argv[0] not in SUBCOMMANDS and not argv[0].startswith("-"):
        return ["run", *argv]
    return argv


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    if not raw:
        parser.print_help(out)
        return EXIT_USAGE
    args = _parse(parser, normalise_argv(raw))
    masker = SecretMasker()
    try:
        config = load_config(getattr(args, "config", None))
        masker = SecretMasker(config.secrets())
        handler = {
            "run": cmd_run, "validate": cmd_validate, "plan": cmd_plan, "graph": cmd_graph,
            "list-transforms": cmd_list_transforms, "status": cmd_status, "unlock": cmd_unlock,
            "forget": cmd_forget,
        }[args.command]
        return handler(args, config, ConsoleOut(out, masker))  # type: ignore[arg-type]
    except SpecFileMissing as exc:
        return _refused(args, exc.exit_code, [f"error: {exc}"], masker)
    except SpecError as exc:
        lines = [f"error: the spec is invalid ({len(exc.problems)} problem(s)):",
                 *[f"  {problem}" for problem in exc.problems]]
        return _refused(args, exc.exit_code, lines, masker)
    except TickflowError as exc:
        return _refused(args, exc.exit_code, [f"error: {exc}"], masker)
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", None)
        if not getattr(exc, "reported", False):  # a run reports its own end; this is an interrupt around it
            print("terminated" if signum else "interrupted", file=sys.stderr)
        return 128 + int(signum) if signum else 130


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parser.parse_args``; with ``--log-format json`` a usage error ends as the one ``run_ended`` event a
    scheduler reads, not as argparse's usage text (help still prints as text: it was asked for)."""
    wants_json = "--log-format=json" in argv or any(
        a == "--log-format" and argv[i + 1:i + 2] == ["json"] for i, a in enumerate(argv))
    if not wants_json:
        return parser.parse_args(argv)
    import contextlib
    import io

    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code in (0, None):
            raise
        said = [ln for ln in captured.getvalue().splitlines() if ln.strip()]
        message = said[-1] if said else "invalid arguments"
        print(json.dumps({"event": "run_ended", "status": "error", "exit_code": EXIT_USAGE, "message": message}),
              file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def _refused(args: argparse.Namespace, code: int, lines: list[str], masker: SecretMasker) -> int:
    """Ends a command that could not start: the problem on stderr (one JSON event with --log-format json)."""
    err = ConsoleOut(sys.stderr, masker)
    if getattr(args, "log_format", "text") == "json":
        event = {"event": "run_ended", "status": "error", "exit_code": code, "message": "\n".join(lines)}
        print(json.dumps(event), file=err)
    else:
        print("\n".join(lines), file=err)
    return code


# -- validate / plan / graph / list-transforms ----------------------------------------------------------
def _load(path: str, args: argparse.Namespace, config: Config, date: dt.date | None) -> PipelineSpec:
    return load_spec(path, date=date or dt.date.today(), var_overrides=parse_var_overrides(args.var),
                     config=config)


def cmd_validate(args: argparse.Namespace, config: Config, out: TextIO) -> int:
    failed = 0
    session = Session(dataclasses.replace(config, spark=dataclasses.replace(config.spark, master="local[1]")))
    try:
        for path in args.specs:
            try:
                spec = _load(path, args, config, args.date)
                problems = _spark_sql_problems(path, spec, session.spark_provider()) if args.spark else []
                if problems:
                    raise SpecError(problems)
            except SpecFileMissing as exc:
                failed += 1
                print(f"{exc}", file=out)
                continue
            except SpecError as exc:
                failed += 1
                print(f"{path}: INVALID ({len(exc.problems)} problem(s))", file=out)
                for problem in exc.problems:
                    print(f"  {problem}", file=out)
                continue
            print(f"{path}: OK (pipeline '{spec.name}', {len(spec.steps)} steps)", file=out)
            if not args.spark:
                for note in _unchecked_sql(path, spec):
                    print(f"  note: {note}", file=out)
    finally:
        if session.spark is not None:
            from engine.spark import stop_jvm

            session.spark.stop()
            stop_jvm()
    return EXIT_USAGE if failed else EXIT_OK


def _step_where(path: str, step: Any) -> str:
    return f"{path}:{step.line}" if step.line else str(path)


def _unchecked_sql(path: str, spec: PipelineSpec) -> list[str]:
    """The SQL steps whose text sqlglot cannot read: their syntax is first checked by Spark's parser."""
    from engine.spec_loader import SqlParseError, sql_tables

    notes = []
    for step in spec.steps.values():
        if step.sql is None:
            continue
        try:
            sql_tables(step.sql)
        except SqlParseError as exc:
            notes.append(f"{_step_where(path, step)}: steps.{step.name}.sql: not checked here (sqlglot: {exc}); "
                         "'validate --spark' checks it with Spark's parser, as a run does before its first step")
    return notes


def _spark_sql_problems(path: str, spec: PipelineSpec, spark: Any) -> list[str]:
    """Spark's parse errors of every SQL text of the spec, as validation problems (file:line of the step)."""
    from engine.sql_check import syntax_errors

    steps = list(spec.steps.values())
    return [f"{_step_where(path, spec.steps[name])}: steps.{name}: {error}"
            for name, error in syntax_errors(spark, steps, {s.name for s in steps})]


def cmd_graph(args: argparse.Namespace, config: Config, out: TextIO) -> int:
    spec = _load(args.spec, args, config, args.date)
    dag = dag_of(spec.steps)
    nodes, edges = list(dag.nodes), dag.edges()
    from engine import graph_render

    text = (graph_render.to_mermaid(nodes, edges, None) if args.format == "mermaid"
            else graph_render.to_dot(nodes, edges, None, name=spec.name))
    print(text, file=out)
    return EXIT_OK


SQL_STEP_NOTE = ("A step may also be `sql:` instead of `transform:`: one Spark SQL query over its inputs (temporary "
                 "views by their input names); its result feeds the steps that read it and is written to its output "
                 "if it has one (README, \"Add a metric\").")


def cmd_list_transforms(args: argparse.Namespace, config: Config, out: TextIO) -> int:
    REGISTRY.discover(config.modules, where=config.source)
    for module in args.module:
        REGISTRY.import_module(module, where="--module")
    defs = REGISTRY.all()
    if args.json:
        json.dump([{"name": d.name, "description": d.description, "inputs": d.inputs, "outputs": d.outputs,
                    "params": d.params_schema, "origin": d.origin} for d in defs], out, indent=2)
        print(file=out)
        return EXIT_OK
    for d in defs:
        print(f"{d.name}: {d.description}", file=out)
        ins = ", ".join(d.inputs) if d.inputs is not None else "any"
        print(f"  inputs: {ins or 'none'}   outputs: {', '.join(d.outputs)}", file=out)
        props = d.params_schema.get("properties", {})
        required = set(d.params_schema.get("required", []))
        for pname, pschema in props.items():
            ptype = pschema.get("type", "any") if isinstance(pschema, dict) else "any"
            if isinstance(ptype, list):
                ptype = "|".join(ptype)
            flags = "required" if pname in required else (
                f"default {json.dumps(pschema.get('default'))}" if "default" in pschema else "optional")
            desc = pschema.get("description", "") if isinstance(pschema, dict) else ""
            print(f"    {pname} ({ptype}, {flags}){': ' + desc if desc else ''}", file=out)
    print(f"\n{SQL_STEP_NOTE}", file=out)
    return EXIT_OK


def cmd_status(args: argparse.Namespace, config: Config, out: TextIO) -> int:
    from engine.tracker.commands import cmd_status as run

    return run(args, config, out=out)


def cmd_unlock(args: argparse.Namespace, config: Config, out: TextIO) -> int:
    from engine.tracker.commands import cmd_unlock as run

    return run(args, config, out=out)


def cmd_forget(args: argparse.Namespace, config: Config, out: TextIO) -> int:
    from engine.tracker.commands import cmd_forget as run

    return run(args, config, out=out)


def cmd_plan(args: argparse.Namespace, config: Config, out: TextIO) -> int:
    """The plan of each date a run with the same arguments would process (``run --dry-run`` too)."""
    from engine.plan import describe_plan
    from engine.storage.factory import open_storage
    from engine.tracker.factory import open_tracker

    check_date_args(args)
    start = args.date or getattr(args, "start", None)
    probe = _load(args.spec, args, config, start)
    check_selection(probe, args.select)
    raw_storage = open_storage(config.storage.raw_root, config)
    check_raw_root(args, probe, raw_storage)  # a wrong raw root is an error, not "nothing to do"
    open_storage(config.storage.root, config).check()  # what would refuse the run refuses its plan
    if args.date:
        dates = [args.date]
    else:
        tracker = open_tracker(config, read_only=True)  # planning only looks: no table, no SQLite file
        try:
            dates, done = dates_to_run(args, probe, raw_storage, tracker, config.holidays,
                                       storage=open_storage(config.storage.root, config))
        finally:
            tracker.close()
        for d in done:
            print(f"{probe.name} {d}: already succeeded; a run would leave it alone (use --force)", file=out)
        if not dates:
            print(nothing_to_do(args, probe, done, raw_storage, tracker), file=out)
            return EXIT_OK
    for n, date in enumerate(dates):
        spec = probe if date == start else _load(args.spec, args, config, date)
        print(("\n" if n else "") + describe_plan(spec, config, date, selectors=tuple(args.select),
                                                  force=args.force), file=out)
    return EXIT_OK


# -- run ---------------------------------------------------------------------------------------------------
# How a run that did not succeed is labelled (stderr line, JSON run_ended event, backfill table) by exit code
END_STATUS = {EXIT_STEP_FAILED: "failed", EXIT_USAGE: "error", errors.EXIT_UPSTREAM: "blocked",
              errors.EXIT_RUNNING: "running", 130: "interrupted", 143: "terminated"}
@dataclass
class DateOutcome:
    date: dt.date
    status: str
    exit_code: int
    duration_s: float
    rows: int = 0
    message: str = ""
    log_file: str | None = None
    report: str | None = None


@dataclass
class Session:
    """What stays alive across the dates of one invocation (the SparkSession, the tracker)."""

    config: Config
    spark: Any = None
    outcomes: list[DateOutcome] = field(default_factory=list)
    storages: tuple[Any, ...] = ()

    def spark_provider(self) -> Any:
        if self.spark is None:
            from engine.spark import build_session, unknown_sql_settings

            conf = dict(self.config.spark.conf)
            for storage in self.storages:  # direct mode: the connector's non-secret settings
                conf.update(getattr(storage, "spark_conf", dict)())
            log.info("starting Spark (%s)", self.config.spark.master)
            spark = build_session(self.config.spark.master, conf)
            for key in unknown_sql_settings(spark, self.config.spark.conf):
                log.warning("[spark] %s is not a setting Spark %s knows: it has no effect (misspelt?)", key,
                            spark.version)
            for storage in self.storages:  # credentials go to the running session: never on the JVM's command line
                getattr(storage, "configure_spark", lambda _spark: None)(spark)
            self.spark = spark
        return self.spark


def check_date_args(args: argparse.Namespace) -> None:
    """Mistakes in --date/--start/--end are usage errors, found before the tracker, storage or Spark."""
    if args.date and (args.start or args.end):
        raise TickflowError("give either --date or --start/--end, not both")
    if (args.start or args.end) and not (args.start and args.end):
        raise TickflowError("a backfill needs both --start and --end")
    if args.start and args.end and args.start > args.end:
        raise TickflowError(f"--start {args.start} is after --end {args.end}")


def resolve_dates(args: argparse.Namespace, spec: PipelineSpec, raw_storage: Any, tracker: Any,
                  holidays: Sequence[dt.date] = ()) -> list[dt.date]:
    """The dates the arguments name or the inputs offer (``check_date_args`` has passed: run and plan call it
    first, before they open anything); a backfill of a spec without a catch-up source takes the trading days."""
    if args.date:
        return [args.date]
    rows = tracker.list_jobs() if tracker is not None else []
    offered = candidate_dates(spec.catch_up, raw_storage, rows)
    if args.start or args.end:
        if offered is None:
            return trading_days(args.start, args.end, holidays)
        return [d for d in offered if args.start <= d <= args.end]
    if offered is None:
        raise TickflowError(f"{spec.file}: no --date given and the spec declares no catch_up source; "
                            f"give --date YYYY-MM-DD or --start/--end")
    return offered


def raw_catch_up_folders(args: argparse.Namespace, spec: PipelineSpec) -> list[str]:
    """The raw folders a run without --date takes its dates from ([] with --date, or for an upstream catch-up)."""
    if args.date:
        return []
    return [str(f) for f in spec.catch_up.get("raw_folders") or []]


def check_raw_root(args: argparse.Namespace, spec: PipelineSpec, raw_storage: Any) -> None:
    """A run of a spec that takes its dates from raw folders (a catch-up, a backfill, or one --date) when none of
    them is under the raw root: ConfigError (exit 2), raised before the tracker is opened and Spark started (run
    and plan call it first). A mistyped raw root is then a configuration error, not a date recorded as failed."""
    raw_storage.check_readable()  # wrong credentials are named as such, not as a raw folder that failed to list
    folders = [str(f) for f in spec.catch_up.get("raw_folders") or []]
    if folders:
        check_raw_folders(spec.name, raw_storage, folders)


def nothing_to_do(args: argparse.Namespace, spec: PipelineSpec, done: Sequence[dt.date], raw_storage: Any,
                  tracker: Any) -> str:
    """Why a catch-up or backfill (run or plan) has no date to process; a raw catch-up names where it looked."""
    folders = raw_catch_up_folders(args, spec)
    if done:
        why = "every date already succeeded"
    elif folders:
        why = no_new_raw_dates(raw_storage, folders)
    elif spec.catch_up.get("upstream") and not args.date:
        why = no_upstream_dates(str(spec.catch_up["upstream"]), args.start, args.end, tracker=tracker.describe())
    else:
        why = "no new input dates"
    return f"{spec.name}: nothing to do ({why})"


def dates_to_run(args: argparse.Namespace, spec: PipelineSpec, raw_storage: Any, tracker: Any,
                 holidays: Sequence[dt.date] = (), *, storage: Any) -> tuple[list[dt.date], list[dt.date]]:
    """(dates a run processes, dates it leaves alone because their job already succeeded).

    An explicit --date always runs (the guard then decides); a catch-up or backfill skips succeeded dates
    unless --force, unless a job they require succeeded again after them (their outputs are out of date), or
    unless partitions their steps wrote are gone from ``storage``.
    """
    dates = resolve_dates(args, spec, raw_storage, tracker, holidays)
    if args.date or getattr(args, "force", False):
        return dates, []
    rows = {row.job_id: row for row in tracker.list_jobs()}
    succeeded = set(job_dates(rows.values(), spec.name, ("success",)))
    if spec.reads_earlier_dates and dates:  # parsed once: a catch-up may weigh years of dates
        earlier = [(r, parse_job_id(r.job_id).date)  # type: ignore[union-attr]
                   for r in upstream_rows(rows.values(), spec.requires, max(dates), earlier=True)]

        def upstream(d: dt.date) -> list[Any]:
            return [r for r, day in earlier if day <= d]
    else:
        def upstream(d: dt.date) -> list[Any]:
            return [rows.get(pipeline_job_id(up, d)) for up in spec.requires]
    done = [d for d in dates if d in succeeded and not outdated_by(rows.get(pipeline_job_id(spec.name, d)),
                                                                   upstream(d))]
    # a date whose outputs are gone from storage, or whose raw files changed since, is not done, whatever the
    # tracker says
    lister, stamper = PartitionLister(storage), RawStamper(raw_storage)
    done = [d for d in done if not gone_outputs(spec, d, rows, lister) and not changed_raw(spec, d, rows, stamper)]
    return [d for d in dates if d not in done], done


def check_selection(spec: PipelineSpec, selectors: Sequence[str]) -> None:
    """A --select naming no step is a usage error, found before anything starts."""
    if selectors:
        from engine.selection import parse_selectors, select

        select(dag_of(spec.steps), parse_selectors(tuple(selectors)))


def refuse_foreign_outputs(spec: PipelineSpec, tracker: Any) -> None:
    """SpecError (exit 2, before any lock or Spark) when the spec would write a dataset another pipeline writes."""
    from engine.dataset_owners import foreign_outputs

    problems = foreign_outputs(spec, tracker.list_jobs())
    if problems:
        tracker.close()
        raise SpecError(problems)


@contextlib.contextmanager
def sigterm_stops_the_run() -> Iterator[None]:
    """SIGTERM stops a run as Ctrl-C does (exit 143, its line, a backfill's table) also where no job is held:
    waiting for an upstream job, between the dates of a catch-up. There it used to end the process at once,
    with no word; while a job is held, the job's guard handles it (and records the job)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_run(args: argparse.Namespace, config: Config, out: TextIO) -> int:
    with sigterm_stops_the_run():
        return _run_command(args, config, out)


def _run_command(args: argparse.Namespace, config: Config, out: TextIO) -> int:
    from engine.storage.factory import open_storage
    from engine.tracker.factory import open_tracker

    if args.dry_run:
        return cmd_plan(args, config, out)
    check_date_args(args)
    probe = _load(args.spec, args, config, args.date or args.start)
    check_selection(probe, args.select)
    raw_storage = open_storage(config.storage.raw_root, config)
    check_raw_root(args, probe, raw_storage)  # a wrong raw root is an error, not "nothing to do"
    storage = open_storage(config.storage.root, config)
    storage.check()  # creates nothing: a run the tracker then refuses leaves no folder
    tracker = open_tracker(config)
    refuse_foreign_outputs(probe, tracker)
    session = Session(config, storages=(storage, raw_storage))
    interrupt: KeyboardInterrupt | None = None
    try:
        dates, done = dates_to_run(args, probe, raw_storage, tracker, config.holidays, storage=storage)
        if args.start or args.end:  # a backfill's table lists the dates it left alone
            session.outcomes += [DateOutcome(d, "skipped", EXIT_OK, 0.0, message="already succeeded")
                                 for d in done]
        if not dates and not session.outcomes:
            print(nothing_to_do(args, probe, done, raw_storage, tracker), file=out)
            return EXIT_OK
        for i, date in enumerate(dates):
            try:
                outcome = run_one_date(args, config, date, storage, raw_storage, tracker, session, out)
            except KeyboardInterrupt as exc:  # the table still says how far the run got, then the command stops
                interrupt = exc
                session.outcomes += [o for o in [getattr(exc, "outcome", None)] if o is not None]
                session.outcomes += [DateOutcome(d, "not run", EXIT_OK, 0.0, message="not attempted: the run was "
                                                 f"{'terminated' if getattr(exc, 'signum', None) else 'interrupted'}")
                                     for d in dates[i + 1:]]
                break
            session.outcomes.append(outcome)
            if outcome.exit_code != EXIT_OK and not args.keep_going:
                note = f"not attempted: {date.isoformat()} was {outcome.status} (--keep-going goes on)"
                session.outcomes += [DateOutcome(d, "not run", EXIT_OK, 0.0, message=note) for d in dates[i + 1:]]
                break
    finally:
        tracker.close()
        if session.spark is not None:
            from engine.spark import stop_jvm

            try:
                session.spark.stop()
            except Exception as exc:  # the JVM already ended (stopped with us): nothing left to stop
                log.debug("stopping Spark: %s", exc)
            stop_jvm()
            for store in session.storages:
                store.settle()
        from engine.run_logging import stop_run_logging

        stop_run_logging()
    outcomes = sorted(session.outcomes, key=lambda o: o.date)
    if len(outcomes) > 1 or args.start:
        print_backfill_table(outcomes, out)
    if interrupt is not None:
        raise interrupt
    return aggregate_exit(outcomes)


def aggregate_exit(outcomes: list[DateOutcome]) -> int:
    codes = {o.exit_code for o in outcomes}
    for code in (EXIT_STEP_FAILED, errors.EXIT_RUNNING, errors.EXIT_UPSTREAM, EXIT_USAGE):
        if code in codes:
            return code
    return EXIT_OK


def print_backfill_table(outcomes: list[DateOutcome], out: TextIO) -> None:
    print("\ndate        status    duration      rows  note", file=out)
    for o in outcomes:
        print(f"{o.date.isoformat()}  {o.status:<8} {o.duration_s:>8.1f}s {o.rows:>9,}  {clip(o.message)}", file=out)


def run_one_date(args: argparse.Namespace, config: Config, date: dt.date, storage: Any, raw_storage: Any,
                 tracker: Any, session: Session, out: TextIO) -> DateOutcome:
    from engine.reporting import publish_report
    from engine.run_logging import end_of_run_console
    from engine.runner import PipelineRunner, RunOptions
    from engine.tracker.guard import JobGuard

    t0 = time.monotonic()
    spec = _load(args.spec, args, config, date)
    options = RunOptions(selectors=tuple(args.select), force=args.force,
                         wait_for_upstream=args.wait_for_upstream,
                         parallel_steps=args.parallel_steps or config.parallel_steps)
    log_file = _start_logging(args, config, spec.name, date, options.run_id)
    guard = JobGuard(tracker, spec.name, date, spec.requires, force=args.force,
                     wait_for_upstream=args.wait_for_upstream, lease_seconds=config.tracker.lease_seconds,
                     log=logging.getLogger("tickflow.tracker"), run_id=options.run_id, secrets=config.secrets(),
                     reads_earlier=spec.reads_earlier_dates,
                     incomplete=None if args.force else incomplete_job(spec, date, tracker, storage, raw_storage),
                     upstream_incomplete=lambda job: incomplete_upstream(job, tracker.list_jobs(), storage,
                                                                         raw_storage))
    def progress_factory(total: int, spark_context: Any) -> Any:
        from engine.progress import Progress

        mode = "quiet" if args.quiet else ("json" if args.log_format == "json" else "bar")
        return Progress(total, sys.stderr, mode, None, spark_context,
                        labels={"pipeline": spec.name, "date": date.isoformat()})

    runner = PipelineRunner(spec, config, date=date, storage=storage, raw_storage=raw_storage,
                            registry=REGISTRY, spark_provider=session.spark_provider, guard=guard,
                            options=options, progress_factory=progress_factory)
    record = runner.new_record()
    record.log_file = str(log_file) if log_file else None
    code = EXIT_OK
    message = ""
    interrupt: KeyboardInterrupt | None = None
    try:
        try:
            record = runner.run()
            record.log_file = str(log_file) if log_file else None
            message = record.message
        except TickflowError as exc:
            code = exc.exit_code
            message = str(exc)
            record = _failed_record(runner, record, message)
        except Exception as exc:  # infrastructure trouble outside a step: one line, trace in the log
            from engine.runner import essential_line

            code = EXIT_STEP_FAILED
            message = essential_line(exc)
            log.error("run failed: %s", message)
            log.debug("detail", exc_info=True)
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: reported like any other end, then the command stops
            from engine.tracker.base import stop_message

            interrupt, signum = exc, getattr(exc, "signum", None)
            code, message = (128 + int(signum) if signum else 130), stop_message(exc)
            record = _failed_record(runner, record, message)
        rows = sum(sum(s.rows_out.values()) for s in record.steps)
        report = None
        started = any(s.started is not None or s.status == "failed" for s in record.steps)
        if record.status != "skipped" and (code in (EXIT_OK, EXIT_STEP_FAILED) or started):
            report = publish_report(record, runner, storage, log_file)
        if record.status == "skipped":
            print(f"{spec.name} {date}: already succeeded; nothing to do (use --force to rerun)", file=out)
            status = "skipped"
        elif code == EXIT_OK:
            print(PipelineRunner.summary(record), file=out)
            status = record.status  # success, or stale: a --select run left steps out of date (exit 0)
        else:
            # refused: an upstream job is not done (3), or the job runs elsewhere (4); a step failed (1); the
            # tracker or storage failed, or the lock was lost (2); stopped by Ctrl-C (130) or SIGTERM (143)
            status = END_STATUS.get(code, "failed")
            line = f"{spec.name} {date}: {status}: {message}"
            # the log the run points to says why it ended so (a scheduler's console output is often lost)
            log.log(logging.WARNING if code in (errors.EXIT_UPSTREAM, errors.EXIT_RUNNING) else logging.ERROR,
                    "%s (exit %d)", line, code, extra={FILE_ONLY: True})
            if args.log_format == "json":  # stderr stays one JSON object per line for schedulers
                line = json.dumps({"event": "run_ended", "pipeline": spec.name, "date": str(date),
                                   "status": status, "exit_code": code, "message": message})
            print(line, file=ConsoleOut(sys.stderr, SecretMasker(config.secrets())))
        if report:
            print(f"report: {report}", file=out)
        if log_file:
            print(f"log: {log_file}", file=out)
        outcome = DateOutcome(date, status, code, time.monotonic() - t0, rows, message,
                              str(log_file) if log_file else None, report)
        if interrupt is not None:
            interrupt.reported = True  # type: ignore[attr-defined]  # main() adds no second line
            interrupt.outcome = outcome  # type: ignore[attr-defined]  # a backfill's table shows it
            raise interrupt
        return outcome
    finally:
        end_of_run_console()  # the JVM's last words (it stops after the last date) go to the log file only


def _start_logging(args: argparse.Namespace, config: Config, pipeline: str, date: dt.date, run_id: str) -> Any:
    """The run's log file; a log folder that cannot be made or written is a config error (exit 2), found
    before the job is locked or Spark started."""
    from engine.run_logging import log_dir_of, start_run_logging

    try:
        return start_run_logging(config, pipeline, date, run_id, quiet=args.quiet, fmt=args.log_format)
    except OSError as exc:
        raise errors.ConfigError(f"cannot write the run's log under [pipeline] log_dir {log_dir_of(config)}: "
                                 f"{exc.strerror or exc}") from None


def _failed_record(runner: Any, record: Any, message: str) -> Any:
    return runner.record if runner.record is not None else record


def entry() -> None:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    sys.exit(main())


if __name__ == "__main__":
    entry()
