"""Command line: parses arguments and hands over to the engine. Exit codes are the contract.

  0 success or nothing to do   1 a step failed   2 usage, spec, config or infrastructure error
  3 upstream job not successful for that date    4 the job is already running elsewhere
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from engine.config import Config, load_config
from engine.console_out import ConsoleOut
from engine.dag import dag_of
from engine.dates import parse_date
from engine.errors import EXIT_OK, EXIT_USAGE, SpecError, SpecFileMissing, TickflowError
from engine.logs import SecretMasker
from engine.registry import REGISTRY
from engine.run_command import Session, cmd_plan, cmd_run, load_for_date
from engine.spec import PipelineSpec
from engine.spec_loader import load_spec, parse_var_overrides
from engine.suggest import closest

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
# Set by scripts/run_spec.sh to the wrapper's name (./preprocess.sh): the wrapper passes SPEC itself, so the run
# command's help and usage errors show the wrapper's usage, without SPEC.
WRAPPER_ENV = "TICKFLOW_WRAPPER"
RUN_DESCRIPTION = ("With --date: that date. With --start/--end: a backfill over every date in the range that has "
                   "input, oldest first. With neither: catch up on every date found in the input that has not yet "
                   "succeeded.")


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


def build_parser(wrapper: str | None = None) -> argparse.ArgumentParser:
    """The CLI; ``wrapper``: the name of the script that runs ``run`` with its own SPEC (see WRAPPER_ENV)."""
    parser = argparse.ArgumentParser(
        prog="run_pipeline.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run declarative Spark pipelines for equity market data.", epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    stem = os.path.splitext(os.path.basename(wrapper or ""))[0]
    ran = f"pipelines/{stem}.yaml (the wrapper passes it)" if wrapper else "SPEC"
    run = sub.add_parser("run", help="run a pipeline for a date, a date range, or catch up", prog=wrapper,
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         description=f"Run {ran}. {RUN_DESCRIPTION}")
    run.add_argument("spec", metavar="SPEC", help=argparse.SUPPRESS if wrapper else SPEC_HELP)
    _common(run)
    _range_options(run)
    run.add_argument("--select", action="append", default=[], metavar="SEL",
                     help="run only these steps: 'step' (its upstream steps feed it without writing), "
                     "'+step' (with its upstream steps), 'step+' (with its downstream steps), '+step+' (both); "
                     "repeatable")
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
    run.add_argument("--quiet", action="store_true",
                     help="no progress, no INFO lines: only warnings and errors, and the summary with the report "
                     "and log paths")
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
                        "unlock is recorded (status --audit). A holder whose process still runs on this host "
                        "also needs --force (or its pid typed at the question). Exit 0 done or not locked, "
                        "1 declined, 2 unknown job.")
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
    if wrapper:  # argparse reports a run's unrecognized arguments with the top parser's usage
        parser.prog, parser.usage = wrapper, run.format_usage().removeprefix("usage: ").rstrip("\n")
    return parser


def leave(code: int) -> NoReturn:
    """``sys.exit(code)``, except after a stop that gave up on steps still running their own code (a plugin
    waiting on something; engine.runner ABANDONED): the interpreter would wait for their threads for ever, so the
    process ends at once, its logs flushed (the JVM has stopped and the job's lock was released before)."""
    from engine.runner import ABANDONED

    if ABANDONED:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def command_typo(argv: Sequence[str]) -> str | None:
    """``unknown command 'valdate' (did you mean 'validate'?)`` when the first word, which would be read as a spec
    file, is no file and looks like a misspelt command (argparse would say 'unrecognized arguments: spec.yaml')."""
    word = argv[0] if argv else ""
    if not word or word in SUBCOMMANDS or word.startswith("-") or "." in word or os.sep in word:
        return None
    close = closest(word, SUBCOMMANDS)
    if close is None or os.path.exists(word):
        return None
    return f"unknown command '{word}' (did you mean '{close}'?)"


def normalise_argv(argv: Sequence[str]) -> list[str]:
    """``run_pipeline.py SPEC ...`` means ``run_pipeline.py run SPEC ...``."""
    argv = list(argv)
    if argv and argv[0] not in SUBCOMMANDS and not argv[0].startswith("-"):
        return ["run", *argv]
    return argv


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = build_parser(os.environ.pop(WRAPPER_ENV, "") or None)  # popped: not a child process's concern
    raw = list(sys.argv[1:] if argv is None else argv)
    if not raw:
        parser.print_help(out)
        return EXIT_USAGE
    typo = command_typo(raw)
    if typo:
        fmt = "json" if _wants_json(raw) else "text"
        return _refused(argparse.Namespace(log_format=fmt), EXIT_USAGE, [f"error: {typo}"], SecretMasker())
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
    if not _wants_json(argv):
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


def _wants_json(argv: list[str]) -> bool:
    return "--log-format=json" in argv or any(
        a == "--log-format" and argv[i + 1:i + 2] == ["json"] for i, a in enumerate(argv))


def _refused(args: argparse.Namespace, code: int, lines: list[str], masker: SecretMasker) -> int:
    """Ends a command that could not start: the problem on stderr (one JSON event with --log-format json)."""
    err = ConsoleOut(sys.stderr, masker)
    if getattr(args, "log_format", "text") == "json":
        event = {"event": "run_ended", "status": "error", "exit_code": code, "message": "\n".join(lines)}
        print(json.dumps(event), file=err)
    else:
        print("\n".join(lines), file=err)
    return code


# -- validate / graph / list-transforms ---------------------------------------------------------------
def cmd_validate(args: argparse.Namespace, config: Config, out: TextIO) -> int:
    failed = 0
    session = Session(dataclasses.replace(config, spark=dataclasses.replace(config.spark, master="local[1]")))
    try:
        for path in args.specs:
            warnings: list[str] = []
            try:
                spec = load_spec(path, date=args.date or dt.date.today(), var_overrides=parse_var_overrides(args.var),
                                 config=config, warnings=warnings)
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
            for warning in warnings:
                print(f"  warning: {warning}", file=out)
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
    from engine.sql_text import SqlParseError, sql_tables

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
    spec = load_for_date(args.spec, args, config, args.date)
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


def entry() -> None:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    sys.exit(main())


if __name__ == "__main__":
    entry()
