"""Operator commands: ``status`` (what ran, what is locked), ``unlock JOB_ID`` (clear a stuck lock) and
``forget JOB_ID`` (delete a mistaken job's rows)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import socket
import sys
from collections.abc import Sequence
from typing import IO

from engine.config import Config
from engine.console_out import clip
from engine.errors import EXIT_RUNNING
from engine.processes import gone_here
from engine.tracker.base import JobRow, fmt_time, iso_utc, parse_job_id
from engine.tracker.factory import open_tracker


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline", action="append", default=None,
                        help="only jobs of this pipeline (repeatable)")
    parser.add_argument("--start", type=_date, default=None, help="first processing date (YYYY-MM-DD)")
    parser.add_argument("--end", type=_date, default=None, help="last processing date (YYYY-MM-DD)")
    parser.add_argument("--steps", action="store_true", help="also show the rows of individual steps")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")


def select_rows(rows: Sequence[JobRow], pipelines: Sequence[str] | None, start: dt.date | None,
                end: dt.date | None, steps: bool) -> list[JobRow]:
    """Filter by pipeline and date range; rows whose id does not follow the convention show unless filtered."""
    out = []
    for row in rows:
        key = parse_job_id(row.job_id)
        if key is None:
            if not pipelines and start is None and end is None:
                out.append(row)
            continue
        if key.step is not None and not steps:
            continue
        if pipelines and key.pipeline not in pipelines:
            continue
        if (start is not None and key.date < start) or (end is not None and key.date > end):
            continue
        out.append(row)
    return out


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
                     clip(r.message or "")))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
             for line in (header, *body)]
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace, config: Config, out: IO[str] = sys.stdout) -> int:
    """Print the job rows (a table, or JSON with --json); TrackerError propagates (exit 2).

    Read-only: looking must not create the table (or an SQLite file) nor upgrade an older one."""
    with open_tracker(config, read_only=True) as tracker:
        rows = select_rows(tracker.list_jobs(), args.pipeline, args.start, args.end, args.steps)
        now = tracker.now()
        where = tracker.describe()
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


def operator() -> str:
    """Who runs the command, recorded with the unlock."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def cmd_unlock(args: argparse.Namespace, config: Config, out: IO[str] = sys.stdout,
               inp: IO[str] = sys.stdin) -> int:
    """Clear a job's lock after confirmation; 0 done or nothing to do, 1 declined, 2 unknown job."""
    with open_tracker(config) as tracker:
        row = tracker.get(args.job_id)
        if row is None:
            out.write(f"no job {args.job_id} in {tracker.describe()}\n")
            return 2
        if not row.locked:
            out.write(f"job {args.job_id} is not locked (status {row.status or '-'}); nothing to do\n")
            return 0
        now = tracker.now()
        state = "EXPIRED" if row.lease_expired(now) else "still valid"
        gone = ("; its process is not running on this host any more (crashed or killed): safe to unlock"
                if gone_here(row.holder_host, row.holder_pid) else "")
        out.write(f"job {row.job_id} is locked by {row.holder()} since "
                  f"{fmt_time(row.started_time or row.updated_time)}; lease {state} "
                  f"(expires {fmt_time(row.lease_expires)}){gone}\n")
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
        if tracker.unlock(row.job_id, message, lock_id=row.lock_id):
            out.write(f"unlocked {row.job_id}"
                      f"{' (status running -> failed)' if row.status == 'running' else ''}; recorded: {message}\n")
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
        gone = tracker.forget(row.job_id, steps)
        if row.job_id not in gone:
            out.write(f"job {row.job_id} was locked meanwhile (a run started); nothing deleted\n")
            return EXIT_RUNNING
        out.write(f"forgot {row.job_id} and {len(gone) - 1} step row(s) (by {operator()})\n")
        return 0
