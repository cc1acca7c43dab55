"""Kept apart from the run command so that run and plan choose their dates with the same plain functions of what they
are handed (the arguments, the spec, the storages, the tracker), with no lock, log or Spark in the way."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from engine.dates import (
    candidate_dates,
    check_raw_folders,
    job_dates,
    no_new_raw_dates,
    no_upstream_dates,
    trading_days,
)
from engine.errors import TickflowError
from engine.outputs_present import PartitionLister, gone_outputs
from engine.raw_inputs import RawStamper, changed_raw
from engine.spec import PipelineSpec
from engine.tracker.base import outdated_by, parse_job_id, pipeline_job_id, upstream_rows


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
    warn_undated_raw_folders(args, spec, raw_storage)


SHOWN_UNDATED = 10  # folder names a warning lists at most


def undated_raw_folders(raw_storage: Any, folders: Iterable[str]) -> list[str]:
    """The sub-folders of the raw catch-up ``folders`` whose name is not a date (``csv/backup``,
    ``json/2020-8-12``), which the catch-up's dates (engine.dates.raw_dates, same test) leave out; names starting
    with ``_`` or ``.`` are hidden, as Spark has them."""
    found = []
    for folder in folders:
        for name in raw_storage.list_dirs(folder):
            if name.startswith(("_", ".")):
                continue
            try:
                dt.date.fromisoformat(name)
            except ValueError:
                found.append(f"{folder.strip('/')}/{name}")
    return found


def warn_undated_raw_folders(args: argparse.Namespace, spec: PipelineSpec, raw_storage: Any) -> None:
    """A catch-up or backfill that takes its dates from raw folders says, once, on stderr, which of their
    sub-folders it skips because their name is no date: a delivery under ``2020-8-12`` would otherwise never be
    processed, the run saying "nothing to do"."""
    folders = raw_catch_up_folders(args, spec)
    odd = undated_raw_folders(raw_storage, folders) if folders else []
    if not odd:
        return
    shown = ", ".join(odd[:SHOWN_UNDATED]) + (f" and {len(odd) - SHOWN_UNDATED} more" if len(odd) > SHOWN_UNDATED
                                               else "")
    print(f"warning: {spec.name}: skipping raw folder(s) whose name is not a YYYY-MM-DD date: {shown} (under "
          f"{raw_storage.describe()}); name a delivery's folder by its date (e.g. 2020-08-12), or move other folders "
          "out of the raw root", file=sys.stderr)


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
