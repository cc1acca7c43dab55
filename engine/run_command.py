"""Kept apart from the command line so that it stays a thin parser and dispatcher, while what a run does with its
dates (the tracker guard, Spark, logs, report, backfill table) lives together with its dry run, plan."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from engine import errors
from engine.config import Config
from engine.console_out import ConsoleOut, clip
from engine.dag import dag_of
from engine.errors import EXIT_OK, EXIT_STEP_FAILED, EXIT_USAGE, SpecError, TickflowError
from engine.logs import FILE_ONLY, SecretMasker
from engine.outputs_present import incomplete_job, incomplete_upstream
from engine.registry import REGISTRY
from engine.run_dates import check_date_args, check_raw_root, dates_to_run, nothing_to_do
from engine.spec import PipelineSpec
from engine.spec_loader import load_spec, parse_var_overrides
from engine.tracker.base import Terminated

log = logging.getLogger("tickflow.cli")  # the name these lines have carried in run logs since engine/cli.py


def load_for_date(path: str, args: argparse.Namespace, config: Config, date: dt.date | None, *,
                  warn: bool = False) -> PipelineSpec:
    """The spec rendered for ``date``; with ``warn``, its warnings go to stderr (once per command: the first
    date's load, not every date of a backfill)."""
    warnings: list[str] = []
    spec = load_spec(path, date=date or dt.date.today(), var_overrides=parse_var_overrides(args.var),
                     config=config, warnings=warnings if warn else None)
    console = ConsoleOut(sys.stderr, SecretMasker(config.secrets()))
    for line in warnings:
        print(f"warning: {line}", file=console)
    return spec


def cmd_plan(args: argparse.Namespace, config: Config, out: TextIO) -> int:
    """The plan of each date a run with the same arguments would process (``run --dry-run`` too)."""
    from engine.plan import describe_plan
    from engine.storage.factory import open_storage
    from engine.tracker.factory import open_tracker

    check_date_args(args)
    start = args.date or getattr(args, "start", None)
    probe = load_for_date(args.spec, args, config, start, warn=True)
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
        spec = probe if date == start else load_for_date(args.spec, args, config, date)
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


def check_selection(spec: PipelineSpec, selectors: Sequence[str]) -> None:
    """A --select naming no step, or only steps that write nothing (a run would compute them and keep nothing),
    is a usage error, found before anything starts."""
    if selectors:
        from engine.selection import SelectionError, parse_selectors, select

        chosen = select(dag_of(spec.steps), parse_selectors(tuple(selectors))).selected
        if not any(spec.steps[name].outputs for name in chosen):
            names = ", ".join(sorted(chosen))
            first = sorted(chosen)[0]
            raise SelectionError(f"--select {' '.join(selectors)} picks only steps that write nothing ({names}): a "
                                 f"run would compute them and keep nothing; select the steps that use them, e.g. "
                                 f"{first}+")


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
    probe = load_for_date(args.spec, args, config, args.date or args.start, warn=True)
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
    """The most severe code of the dates: the errors someone must act on (a step failed; the tracker or the
    storage failed, the lock was lost) before the refusals a later run clears by itself (4, then 3)."""
    codes = {o.exit_code for o in outcomes}
    for code in (EXIT_STEP_FAILED, EXIT_USAGE, errors.EXIT_RUNNING, errors.EXIT_UPSTREAM):
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
    spec = load_for_date(args.spec, args, config, date)
    options = RunOptions(selectors=tuple(args.select), force=args.force,
                         wait_for_upstream=args.wait_for_upstream,
                         parallel_steps=args.parallel_steps or config.parallel_steps,
                         stop_grace_s=float(config.stop_grace_seconds))
    log_file = _start_logging(args, config, spec.name, date, options.run_id)
    guard = JobGuard(tracker, spec.name, date, spec.requires, force=args.force,
                     wait_for_upstream=args.wait_for_upstream, lease_seconds=config.tracker.lease_seconds,
                     log=logging.getLogger("tickflow.tracker"), run_id=options.run_id, secrets=config.secrets(),
                     reads_earlier=spec.reads_earlier_dates,
                     incomplete=None if args.force else incomplete_job(spec, date, tracker, storage, raw_storage),
                     upstream_incomplete=lambda job: incomplete_upstream(job, tracker.list_jobs(), storage,
                                                                         raw_storage),
                     log_file=str(log_file) if log_file else None)
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
            from engine.error_lines import essential_line

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

