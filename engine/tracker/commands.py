"""Operator commands: ``status`` (what ran, what is locked), ``unlock JOB_ID`` (clear a stuck lock) and
``forget JOB_ID`` (delete a mistaken job's rows). Unlock and forget leave an entry in ``<table>_audit``, which
``status --audit`` lists."""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import json
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from engine.config import Config
from engine.console_out import clip
from engine.errors import EXIT_RUNNING, TickflowError
from engine.processes import alive_here, gone_here
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


_AGO = re.compile(r"^(\d+)\s*([mhdw])$")
_AGO_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Since:
    """``--since``: a moment (naive UTC, as the tracker keeps times) or an age counted back from the tracker's
    clock, which the rows' times come from (not this machine's)."""

    text: str
    moment: dt.datetime | None = None
    age: dt.timedelta | None = None

    def resolve(self, now: dt.datetime) -> dt.datetime:
        return self.moment if self.moment is not None else now - (self.age or dt.timedelta(0))


def _since(text: str) -> Since:
    """``2026-12-07``, ``2026-12-07T06:00`` (UTC unless it carries an offset) or ``30m``/``24h``/``2d``/``1w``."""
    ago = _AGO.match(text.strip().lower())
    if ago:
        return Since(text, age=dt.timedelta(**{_AGO_UNITS[ago.group(2)]: int(ago.group(1))}))
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] in UTC, or an age such as 30m, 24h, 2d, "
            "1w)") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return Since(text, moment=moment)


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline", action="append", default=None,
                        help="only jobs of this pipeline (repeatable)")
    parser.add_argument("--start", type=_date, default=None, metavar="YYYY-MM-DD",
                        help="only jobs of this processing date or later")
    parser.add_argument("--end", type=_date, default=None, metavar="YYYY-MM-DD",
                        help="only jobs of this processing date or earlier")
    parser.add_argument("--since", type=_since, default=None, metavar="TIME",
                        help="only rows started or updated at TIME or later: YYYY-MM-DD or YYYY-MM-DDTHH:MM "
                        "(UTC unless an offset is given), or an age back from now: 30m, 24h, 2d, 1w (--start and "
                        "--end filter on the processing date instead)")
    parser.add_argument("--steps", action="store_true",
                        help="also show the rows of individual steps, and each run's log file")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    parser.add_argument("--audit", action="store_true",
                        help="list the audit trail instead: every unlock and forget (when, job, who, the rows "
                        "before), oldest first; --pipeline/--start/--end, --since (on the entry's time) and "
                        "--json apply")


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


def touched_since(row: JobRow, since: dt.datetime | None) -> bool:
    """Whether the row started or changed at ``since`` or later ("what ran since yesterday morning")."""
    return since is None or any(t is not None and t >= since for t in (row.started_time, row.updated_time))


def _lock_state(row: JobRow, now: dt.datetime) -> str:
    if not row.locked:
        return "-"
    gone = " (process gone)" if gone_here(row.holder_host, row.holder_pid) else ""
    if row.lease_expires is None:
        return f"held (no lease){gone}"
    return "expired" if row.lease_expired(now) else f"held{gone}"


def _run_key(job_id: str) -> object:
    """The run a row belongs to: a step row shares its job's (pipeline, date); an id off the convention is its own."""
    key = parse_job_id(job_id)
    return job_id if key is None else (key.pipeline, key.date)


def live_runs(rows: Sequence[JobRow], now: dt.datetime) -> set[object]:
    """The runs (``_run_key``) whose lock is held, not expired and not by a process gone from this host: only
    their rows at 'running' are still running, so only theirs get a duration "so far"."""
    return {_run_key(r.job_id) for r in rows
            if r.locked and not r.lease_expired(now) and not gone_here(r.holder_host, r.holder_pid)}


_UNLOCKED = ("unlocked by ", "its run was unlocked by ")


def duration(row: JobRow, now: dt.datetime, live: set[object]) -> tuple[float | None, bool]:
    """(seconds, still running): a live run's time so far, a finished one's ``updated - started``. None where
    the end is unknown: a run that died while 'running', a step turned stale by a later run, or a row an unlock
    ended (their updated_time is when that happened, not when the work ended)."""
    if row.started_time is None:
        return None, False
    if row.status == "running":
        alive = _run_key(row.job_id) in live
        return ((now - row.started_time).total_seconds(), True) if alive else (None, False)
    key = parse_job_id(row.job_id)
    if row.updated_time is None or (row.status == "stale" and key is not None and key.step is not None) \
            or (row.message or "").startswith(_UNLOCKED):
        return None, False
    seconds = (row.updated_time - row.started_time).total_seconds()
    return (seconds, False) if seconds >= 0 else (None, False)


def fmt_duration(seconds: float) -> str:
    """``8.4s``, ``45s``, ``12m 03s``, ``2h 05m``, ``3d 04h``: two units at most, for a column."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def _duration_cell(row: JobRow, now: dt.datetime, live: set[object]) -> str:
    seconds, running = duration(row, now, live)
    if seconds is None:
        return "-"
    return f"{fmt_duration(seconds)} so far" if running else fmt_duration(seconds)


def _as_json(row: JobRow, now: dt.datetime, live: set[object]) -> dict[str, object]:
    """Times as ISO 8601 with their UTC offset, so scripts need not know the tracker keeps UTC."""
    seconds, _ = duration(row, now, live)
    return {"job_id": row.job_id, "status": row.status, "updated_time": iso_utc(row.updated_time),
            "lock_id": row.lock_id, "lock": _lock_state(row, now), "lease_expires": iso_utc(row.lease_expires),
            "holder_host": row.holder_host, "holder_pid": row.holder_pid, "run_id": row.run_id,
            "started_time": iso_utc(row.started_time), "message": row.message,
            "duration_seconds": None if seconds is None else round(seconds, 3), "log_file": row.log_file}


HEADER = ("JOB_ID", "STATUS", "STARTED (UTC)", "DURATION", "UPDATED (UTC)", "LOCK", "HOLDER", "LEASE EXPIRES (UTC)",
          "MESSAGE")
MIN_MESSAGE = 30  # the MESSAGE column's least width on a narrow terminal (the line then overflows)


def terminal_columns(out: IO[str]) -> int | None:
    """The width to fit lines to: the terminal's when writing to one (``COLUMNS`` wins, as in
    ``shutil.get_terminal_size``), else None, so a pipe or file gets every message whole."""
    isatty = getattr(out, "isatty", None)
    if not os.environ.get("COLUMNS") and not (callable(isatty) and isatty()):
        return None
    return shutil.get_terminal_size().columns


def _cells(row: JobRow, now: dt.datetime, live: set[object]) -> tuple[str, ...]:
    """Every column but MESSAGE."""
    held = row.locked
    return (row.job_id, row.status or "-", fmt_time(row.started_time).removesuffix(" UTC"),
            _duration_cell(row, now, live), fmt_time(row.updated_time).removesuffix(" UTC"), _lock_state(row, now),
            row.holder() if held else "-", fmt_time(row.lease_expires).removesuffix(" UTC") if held else "-")


def _indented(text: str, columns: int | None) -> list[str]:
    """A message in full under its row, wrapped to the terminal (a pipe gets its lines as they are)."""
    lines = []
    for line in text.splitlines():
        if columns is None:
            lines.append(f"    {line}".rstrip())
        else:
            lines.extend(textwrap.wrap(line, width=max(MIN_MESSAGE, columns - 4), initial_indent="    ",
                                       subsequent_indent="    ", break_on_hyphens=False) or [""])
    return lines


def _is_step(row: JobRow) -> bool:
    key = parse_job_id(row.job_id)
    return key is not None and key.step is not None


def _table(rows: Sequence[JobRow], now: dt.datetime, live: set[object], columns: int | None,
           show_log: bool) -> str:
    """One line per row, MESSAGE cut to the terminal's width; a failed row's message whole under it when cut
    (the "why" must not need --json or the log), a step's too (what it read and the figures its transform
    recorded: step rows show only with --steps, which asks for them), and with ``show_log`` its run's log file."""
    body = [_cells(r, now, live) for r in rows]
    widths = [max(len(x) for x in col) for col in zip(HEADER[:-1], *body, strict=True)]
    room = None if columns is None else max(MIN_MESSAGE, columns - sum(widths) - 2 * len(widths))

    def line(cells: Sequence[str], message: str) -> str:
        return "  ".join([*(v.ljust(w) for v, w in zip(cells, widths, strict=True)), message]).rstrip()

    lines = [line(HEADER[:-1], HEADER[-1])]
    for row, cells in zip(rows, body, strict=True):
        text = readable(row.message) or row.message or ""
        first = text.splitlines()[0] if text else ""
        shown = first if room is None else clip(first, room)
        lines.append(line(cells, shown))
        if (row.status == "failed" or _is_step(row)) and shown != text:
            lines.extend(_indented(text, columns))
        if show_log and row.log_file:
            lines.append(f"    log: {row.log_file}")
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
        since = args.since.resolve(tracker.now()) if getattr(args, "since", None) else None
        entries = [e for e in tracker.audit_entries()
                   if wanted(e.job_id, args.pipeline, args.start, args.end, steps=True)
                   and (since is None or (e.audit_time is not None and e.audit_time >= since))]
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
        now = tracker.now()
        since = args.since.resolve(now) if getattr(args, "since", None) else None
        rows = [r for r in select_rows(every, args.pipeline, args.start, args.end, args.steps)
                if touched_since(r, since)]
        where = tracker.describe()
    live = live_runs(every, now)
    known = sorted({k.pipeline for r in every if (k := parse_job_id(r.job_id)) is not None})
    for name in args.pipeline or ():  # a pipeline one letter off a known one is a typo, not "no jobs"
        close = difflib.get_close_matches(name, known, n=1) if name not in known else []
        if close:
            raise TickflowError(f"no job of pipeline '{name}' in {where}; did you mean '{close[0]}'? (pipelines "
                                f"there: {', '.join(known)})")
    if args.json:
        json.dump([_as_json(r, now, live) for r in rows], out, indent=2)
        out.write("\n")
    elif not rows:
        out.write(f"no jobs in {where}{'' if since is None else f' since {fmt_time(since)}'}\n")
    else:
        out.write(_table(rows, now, live, terminal_columns(out), show_log=args.steps) + "\n")
    return 0


def add_unlock_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", metavar="JOB_ID", help="e.g. preprocess_2020-08-06")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--force", action="store_true",
                        help="also clear a lock whose process is running on this host (a live run: another run "
                        "could then start beside it); without it --yes refuses such a lock and the question asks "
                        "for the pid")


def _running_steps(tracker: Tracker, key: JobKey | None) -> list[JobRow]:
    """The step rows of the job's pipeline and date still at 'running': under a job being unlocked, steps its
    dead (or doomed) run never finished."""
    if key is None or key.step is not None:
        return []
    return [r for r in tracker.list_jobs()
            if (k := parse_job_id(r.job_id)) is not None and k.step is not None
            and (k.pipeline, k.date) == (key.pipeline, key.date) and r.status == "running"]


def _holder_process(row: JobRow, alive: bool) -> str:
    """What this host can tell of the holder's process (nothing for another host's)."""
    if alive:
        return (f"; its process (pid {row.holder_pid}) is running on this host: unlocking will let another run "
                "start beside it")
    if gone_here(row.holder_host, row.holder_pid):
        return "; its process is not running on this host any more (crashed or killed): safe to unlock"
    return ""


def _confirmed(args: argparse.Namespace, row: JobRow, alive: bool, out: IO[str], inp: IO[str]) -> bool:
    """--yes answers the question. A holder alive on this host also needs --force, or its pid typed at the
    question: neither a script nor a reflexive 'y' should put a second run beside a working one."""
    if alive and not args.force:
        if args.yes:
            out.write(f"not unlocked: its process (pid {row.holder_pid}) is running; --yes does not clear a live "
                      "run's lock, add --force to clear it anyway\n")
            return False
        out.write(f"Clear the lock of this live run? Type its pid ({row.holder_pid}) to confirm: ")
        out.flush()
        if inp.readline().strip() != str(row.holder_pid):
            out.write("not unlocked\n")
            return False
        return True
    if args.yes:
        return True
    out.write("Clear this lock? A run still alive would lose it. [y/N] ")
    out.flush()
    if inp.readline().strip().lower() not in ("y", "yes"):
        out.write("not unlocked\n")
        return False
    return True


def cmd_unlock(args: argparse.Namespace, config: Config, out: IO[str] = sys.stdout,
               inp: IO[str] = sys.stdin) -> int:
    """Clear a job's lock after confirmation; its step rows still 'running' become 'failed' with it. 0 done or
    nothing to do, 1 declined (or the lock changed meanwhile, or a live holder here without --force), 2 unknown
    job or a step's id (never locked)."""
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
        alive = alive_here(row.holder_host, row.holder_pid)
        gone = _holder_process(row, alive)
        out.write(f"job {row.job_id} is locked by {row.holder()} since "
                  f"{fmt_time(row.started_time or row.updated_time)}; lease {state}"
                  f"{'' if row.lease_expires is None else f' (expires {fmt_time(row.lease_expires)})'}{gone}\n")
        if steps:
            out.write(f"its step row(s) still running, to be marked failed with it: "
                      f"{', '.join(r.job_id for r in steps)}\n")
        if not _confirmed(args, row, alive, out, inp):
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
