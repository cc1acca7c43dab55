"""Operator commands: ``status`` (what ran, what is locked), ``unlock JOB_ID`` (clear a stuck lock) and
``forget JOB_ID`` (delete a mistaken job's rows). Unlock and forget leave an entry in ``<table>_audit``, which
``status --audit`` lists."""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import json
import sys
from collections.abc import Sequence
from typing import IO

from engine.config import Config
from engine.console_out import clip
from engine.errors import EXIT_RUNNING, TickflowError
from engine.processes import gone_here
from engine.step_message import readable
from engine.tracker.base import (
    AuditEntry,
    JobKey,
    JobRow,
    Tracker,
    current_actor,
    fmt_time,
    iso_utc,
    operator,
    parse_job_id,
    pipeline_job_id,
)
from engine.tracker.factory import open_tracker


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline", action="append", default=None,
                        help="only jobs of this pipeline (repeatable)")
    parser.add_argument("--start", type=_date, default=None, metavar="YYYY-MM-DD",
                        help="only jobs of this processing date or later")
    parser.add_argument("--end", type=_date, default=None, metavar="YYYY-MM-DD",
                        help="only jobs of this processing date or earlier")
    parser.add_argument("--steps", action="store_true", help="also show the rows of individual steps")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    parser.add_argument("--audit", action="store_true",
                        help="list the audit trail instead: every unlock and forget (when, job, who, the rows "
                        "before), oldest first; --pipeline/--start/--end and --json apply")


def wanted(job_id: str, pipelines: Sequence[str] | None, start: dt.date | None, end: dt.date | None,
           steps: bool) -> bool:
    """Whether a job id passes the pipeline and date filters; an id off the convention passes only unfiltered."""
    key = parse_job_id(job_id)
    if key is None:
        return not pipelines and start is None and end is None
    if key.step is not None and not steps:
        return False
    if pipelines and key.pipeline not in pipelines:
        return False
    return not ((start is not None and key.date < start) or (end is not None and key.date > end))


def select_rows(rows: Sequence[JobRow], pipelines: Sequence[str] | None, start: dt.date | None,
                end: dt.date | None, steps: bool) -> list[JobRow]:
    """Filter by pipeline and date range; rows whose id does not follow the convention show unless filtered."""
    return [row for row in rows if wanted(row.job_id, pipelines, start, end, steps)]


def _lock_state(row: JobRow, now: dt.datetime) -> str:
    if not row.locked:
        return "-"
    gone = " (process gone)" if gone_here(row.holder_host, row.holder_pid) else ""
    if row.lease_expires is None:
        return f"held (no lease){gone}"
    return "expired" if row.lease_expired(now) else f"held{gone}"


def _as_json(row: JobRow, now: dt.datetime) -> dict[str, object]:
    """Times as ISO 8601 with their UTC offset, so scripts need not know the tracker keeps UTC."""
    return {"job_id": row.job_id, "status": row.status, "updated_time": iso_utc(row.updated_time),
            "lock_id": row.lock_id, "lock": _lock_state(row, now), "lease_expires": iso_utc(row.lease_expires),
            "holder_host": row.holder_host, "holder_pid": row.holder_pid, "run_id": row.run_id,
            "started_time": iso_utc(row.started_time), "message": row.message}


def _table(rows: Sequence[JobRow], now: dt.datetime) -> str:
    header = ("JOB_ID", "STATUS", "UPDATED (UTC)", "LOCK", "HOLDER", "LEASE EXPIRES (UTC)", "MESSAGE")
    body = []
    for r in rows:
        held = r.locked
        body.append((r.job_id, r.status or "-", fmt_time(r.updated_time).removesuffix(" UTC"),
                     _lock_state(r, now), r.holder() if held else "-",
                     fmt_time(r.lease_expires).removesuffix(" UTC") if held else "-",
                     clip(readable(r.message) or r.message or "")))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
             for line in (header, *body)]
    return "\n".join(lines)


def _audit_as_json(entry: AuditEntry) -> dict[str, object]:
    return {"id": entry.id, "audit_time": iso_utc(entry.audit_time), "job_id": entry.job_id,
            "action": entry.action, "actor": entry.actor, "rows_before": entry.before()}


def _before_summary(entry: AuditEntry) -> str:
    """The job's own row as it was (status, when, holder, run, message) and, for forget, every row deleted."""
    rows = entry.before()
    own = next((r for r in rows if r.get("job_id") == entry.job_id), rows[0] if rows else {})
    parts = [f"status {own.get('status') or '-'}"]
    if isinstance(updated := own.get("updated_time"), str):
        parts.append(f"updated {fmt_time(dt.datetime.fromisoformat(updated)).removesuffix(' UTC')}")
    if own.get("lock_id") is not None:
        parts.append(f"held by {own.get('holder_host') or 'unknown host'} (pid {own.get('holder_pid') or '?'})")
    if own.get("run_id"):
        parts.append(f"run {own['run_id']}")
    if entry.action == "forget":
        parts.append(f"deleted {', '.join(str(r.get('job_id')) for r in rows)}")
    elif entry.action == "unlock" and (steps := [str(r.get("job_id")) for r in rows if r is not own]):
        parts.append(f"steps running -> failed {', '.join(steps)}")
    if own.get("message"):
        parts.append(f"message {clip(str(own['message']), 60)}")
    if "unparsed" in own:
        parts = [clip(str(own["unparsed"]))]
    return "; ".join(parts)


def _audit_table(entries: Sequence[AuditEntry]) -> str:
    header = ("TIME (UTC)", "JOB_ID", "ACTION", "BY", "BEFORE")
    body = [(fmt_time(e.audit_time).removesuffix(" UTC"), e.job_id, e.action, e.actor or "-", _before_summary(e))
            for e in entries]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
                     for line in (header, *body))


def _print_audit(args: argparse.Namespace, config: Config, out: IO[str]) -> int:
    """``status --audit``: the unlock and forget entries, oldest first (read-only, like status)."""
    with open_tracker(config, read_only=True) as tracker:
        entries = [e for e in tracker.audit_entries()
                   if wanted(e.job_id, args.pipeline, args.start, args.end, steps=True)]
        where = tracker.describe()
    if args.json:
        json.dump([_audit_as_json(e) for e in entries], out, indent=2)
        out.write("\n")
    elif not entries:
        out.write(f"no unlock or forget recorded in {where}\n")
    else:
        out.write(_audit_table(entries) + "\n")
    return 0


def cmd_status(args: argparse.Namespace, config: Config, out: IO[str] = sys.stdout) -> int:
    """Print the job rows (a table, or JSON with --json), or with --audit the audit trail; TrackerError
    propagates (exit 2).

    Read-only: looking must not create the table (or an SQLite file) nor upgrade an older one."""
    if args.start and args.end and args.start > args.end:
        raise TickflowError(f"--start {args.start} is after --end {args.end}")
    if getattr(args, "audit", False):
        return _print_audit(args, config, out)
    with open_tracker(config, read_only=True) as tracker:
        every = tracker.list_jobs()
        rows = select_rows(every, args.pipeline, args.start, args.end, args.steps)
        now = tracker.now()
        where = tracker.describe()
    known = sorted({k.pipeline for r in every if (k := parse_job_id(r.job_id)) is not None})
    for name in args.pipeline or ():  # a pipeline one letter off a known one is a typo, not "no jobs"
        close = difflib.get_close_matches(name, known, n=1) if name not in known else []
        if close:
            raise TickflowError(f"no job of pipeline '{name}' in {where}; did you mean '{close[0]}'? (pipelines "
                                f"there: {', '.join(known)})")
    if args.json:
        json.dump([_as_json(r, now) for r in rows], out, indent=2)
        out.write("\n")
    elif not rows:
        out.write(f"no jobs in {where}\n")
    else:
        out.write(_table(rows, now) + "\n")
    return 0


def add_unlock_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", metavar="JOB_ID", help="e.g. preprocess_2020-08-06")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _running_steps(tracker: Tracker, key: JobKey | None) -> list[JobRow]:
    """The step rows of the job's pipeline and date still at 'running': under a job being unlocked, steps its
    dead (or doomed) run never finished."""
    if key is None or key.step is not None:
        return []
    return [r for r in tracker.list_jobs()
            if (k := parse_job_id(r.job_id)) is not None and k.step is not None
            and (k.pipeline, k.date) == (key.pipeline, key.date) and r.status == "running"]


def cmd_unlock(args: argparse.Namespace, config: Config, out: IO[str] = sys.stdout,
               inp: IO[str] = sys.stdin) -> int:
    """Clear a job's lock after confirmation; its step rows still 'running' become 'failed' with it. 0 done or
    nothing to do, 1 declined (or the lock changed meanwhile), 2 unknown job or a step's id (never locked)."""
    key = parse_job_id(args.job_id)
    if key is not None and key.step is not None:
        job = pipeline_job_id(key.pipeline, key.date)
        out.write(f"{args.job_id!r} is a step's id, not a pipeline job's: a step's row is never locked; unlock its "
                  f"job instead, `run_pipeline.py unlock {job}` (its steps still running become failed with it)\n")
        return 2
    with open_tracker(config) as tracker:
        row = tracker.get(args.job_id)
        if row is None:
            out.write(f"no job {args.job_id} in {tracker.describe()}\n")
            return 2
        if not row.locked:
            out.write(f"job {args.job_id} is not locked (status {row.status or '-'}); nothing to do\n")
            return 0
        steps = _running_steps(tracker, key)
        now = tracker.now()
        state = ("none (an older version's lock: it never expires by itself)" if row.lease_expires is None
                 else "EXPIRED" if row.lease_expired(now) else "still valid")
        gone = ("; its process is not running on this host any more (crashed or killed): safe to unlock"
                if gone_here(row.holder_host, row.holder_pid) else "")
        out.write(f"job {row.job_id} is locked by {row.holder()} since "
                  f"{fmt_time(row.started_time or row.updated_time)}; lease {state}"
                  f"{'' if row.lease_expires is None else f' (expires {fmt_time(row.lease_expires)})'}{gone}\n")
        if steps:
            out.write(f"its step row(s) still running, to be marked failed with it: "
                      f"{', '.join(r.job_id for r in steps)}\n")
        if not args.yes:
            out.write("Clear this lock? A run still alive would lose it. [y/N] ")
            out.flush()
            answer = inp.readline().strip().lower()
            if answer not in ("y", "yes"):
                out.write("not unlocked\n")
                return 1
        who = operator()
        message = (f"unlocked by {who} at {fmt_time(now)}; was held by {row.holder()} "
                   f"(run {row.run_id or '?'})")
        # read again (the question may have waited); the unlock's one transaction marks those still running, and
        # only while the job still holds the lock shown: a run that took the job over since keeps its steps
        steps = _running_steps(tracker, key)
        if tracker.unlock(row.job_id, message, lock_id=row.lock_id, actor=current_actor(),
                          steps=[r.job_id for r in steps]):
            failed = f"; step(s) running -> failed: {', '.join(r.job_id for r in steps)}" if steps else ""
            out.write(f"unlocked {row.job_id}{' (status running -> failed)' if row.status == 'running' else ''}"
                      f"{failed}; recorded: {message}\n")
            return 0
        out.write(f"job {row.job_id}: the lock changed meanwhile (released or taken over); run status again\n")
        return 1


def add_forget_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", metavar="JOB_ID", help="a pipeline job, e.g. preprocess_2020-08-09")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def cmd_forget(args: argparse.Namespace, config: Config, out: IO[str] = sys.stdout,
               inp: IO[str] = sys.stdin) -> int:
    """Delete a pipeline job's row and its steps' rows after confirmation, e.g. a run for a mistyped date whose
    failed row would otherwise be offered (and refused) by every later catch-up of the pipelines requiring it.
    0 done, 1 declined, 2 unknown or not a pipeline job, 4 locked (a run holds it, or crashed: unlock first)."""
    key = parse_job_id(args.job_id)
    if key is None or key.step is not None:
        out.write(f"{args.job_id!r} is not a pipeline job id (<pipeline>_<YYYY-MM-DD>, e.g. preprocess_2020-08-06); "
                  "a step's row goes with its job\n")
        return 2
    with open_tracker(config) as tracker:
        row = tracker.get(args.job_id)
        if row is None:
            out.write(f"no job {args.job_id} in {tracker.describe()}\n")
            return 2
        if row.locked:
            out.write(f"job {row.job_id} is locked by {row.holder()}: a run holds it (if it crashed, `unlock` it "
                      "first); nothing deleted\n")
            return EXIT_RUNNING
        steps = [r.job_id for r in tracker.list_jobs()
                 if (k := parse_job_id(r.job_id)) is not None and k.step is not None
                 and (k.pipeline, k.date) == (key.pipeline, key.date)]
        out.write(f"job {row.job_id}: status {row.status or '-'}, updated {fmt_time(row.updated_time)}; "
                  f"{len(steps)} step row(s)\n")
        if not args.yes:
            out.write("Delete these rows? The date then counts as never run; its outputs stay. [y/N] ")
            out.flush()
            if inp.readline().strip().lower() not in ("y", "yes"):
                out.write("nothing deleted\n")
                return 1
        gone = tracker.forget(row.job_id, steps, actor=current_actor())
        if row.job_id not in gone:
            out.write(f"job {row.job_id} was locked meanwhile (a run started); nothing deleted\n")
            return EXIT_RUNNING
        out.write(f"forgot {row.job_id} and {len(gone) - 1} step row(s) (by {operator()})\n")
        return 0
