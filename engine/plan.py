"""Dry run: what a run would do, in which order, with which inputs and outputs, without touching data."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from engine.config import Config
from engine.dataset_owners import foreign_outputs
from engine.error_lines import essential_line
from engine.errors import TickflowError
from engine.failure_place import located
from engine.outputs_present import incomplete_job, incomplete_upstream
from engine.processes import gone_here
from engine.registry import REGISTRY
from engine.runner import PipelineRunner, RunOptions, preflight, written_paths
from engine.spec import PipelineSpec
from engine.tracker.base import fmt_time, outdated_by, upstream_rows
from engine.tracker.readers import readers_of, reads_of, run_line, running_upstream


class _ReadOnlyGuard:
    """Answers ``step_succeeded`` from the tracker without locking anything."""

    already_succeeded = False
    took_over = None
    outdated_by: str | None = None

    def __init__(self, tracker: Any, pipeline: str, date: dt.date):
        self.tracker, self.pipeline, self.date = tracker, pipeline, date
        self.upstream: list[Any] = []  # as JobGuard: a step older than an upstream success is not reused

    def step_succeeded(self, step: str) -> bool:
        if self.tracker is None:
            return False
        from engine.tracker.base import step_job_id, succeeded_since

        return succeeded_since(self.tracker.get(step_job_id(self.pipeline, step, self.date)), self.upstream)


def _job_line(job_id: str, row: Any, now: dt.datetime) -> str:
    """One tracker row as the plan shows it (``row`` is None when the job has no record)."""
    if row is None:
        return f"{job_id}: no record"
    text = f"{job_id}: {row.status or 'unknown'}"
    if row.lease_expired(now):
        text += (f", lock of {row.holder()} expired at {fmt_time(row.lease_expires)} "
                 "(a run would take it over)")
    elif row.lock_id:
        text += f", locked by {row.holder()} (lease until {fmt_time(row.lease_expires)})"
    return text


def _missing_dataset(spec: PipelineSpec, writing: frozenset[str], storage: Any, reader: str, path: str) -> str | None:
    """Why a ``dataset:<path>`` input would not be there when ``reader`` runs (None: it exists, or a step of
    this run writes it first). Validation cannot know: another pipeline may create it later; plan can look."""
    from engine.spec import path_parts, paths_nest

    parts = path_parts(path)
    writers = [s.name for s in spec.steps.values() if s.name != reader
               and any(paths_nest(parts, path_parts(out.path)) for out in s.outputs.values())]
    if any(w in writing for w in writers):
        return None
    try:
        if storage.exists(path):
            return None
    except TickflowError as exc:
        return f"dataset:{path}: cannot tell whether it exists ({exc})"
    not_run = f" (written by step {', '.join(writers)}, which does not write in this run)" if writers else ""
    return (f"dataset:{path} does not exist (yet) under the storage root{not_run}; a run now would fail "
            "at this step")


def _preflight_refusals(runner: PipelineRunner, resumable: set[str], raw: Any) -> dict[str, tuple[int, str]]:
    """Step -> (exit code, why) where its transform's pre-Spark check refuses (e.g. no raw input, a read_dataset
    path no step writes and storage lacks: 1; the raw storage cannot be read: 2), for the steps a run computes."""
    out = {}
    written = written_paths(runner.spec)
    for name in runner.order:
        if runner.selection.runs(name) and name not in resumable:
            step = runner.spec.steps[name]
            try:
                preflight(step, REGISTRY, runner.date, raw, runner.storage, written)
            except TickflowError as exc:
                out[name] = (exc.exit_code, str(exc))
            except Exception as exc:
                out[name] = (1, located(runner.spec, step, exc, essential_line(exc)))
    return out


def describe_plan(spec: PipelineSpec, config: Config, date: dt.date, *, selectors: tuple[str, ...] = (),
                  force: bool = False) -> str:
    from engine.storage.factory import open_storage

    storage = open_storage(config.storage.root, config)
    raw = open_storage(config.storage.raw_root, config)
    tracker = None
    tracker_note = ""
    try:
        from engine.tracker.factory import open_tracker

        tracker = open_tracker(config, read_only=True)  # a dry run leaves no trace, not even the table
    except TickflowError as exc:
        tracker_note = f"(tracker unavailable: {exc})"
    try:
        guard = _ReadOnlyGuard(tracker, spec.name, date)
        runner = PipelineRunner(spec, config, date=date, storage=storage, raw_storage=raw, registry=REGISTRY,
                                spark_provider=lambda: None, guard=guard,
                                options=RunOptions(selectors=selectors, force=force))
        lines = [f"plan for pipeline '{spec.name}' ({spec.file}), date {date.isoformat()}",
                 f"storage: {storage.describe()}   raw: {raw.describe()}"]
        verdict = ""
        job_done = False  # the job already succeeded: a run (without --force) computes no step at all
        if tracker is not None:
            job_id = f"{spec.name}_{date.isoformat()}"
            row = tracker.get(job_id)
            now = tracker.now()
            lines.append("job:      " + _job_line(job_id, row, now))
            not_ready = []
            up_rows = []
            for up in spec.requires:
                up_id = f"{up}_{date.isoformat()}"
                up_rows.append(up_row := tracker.get(up_id))
                lines.append("upstream: " + _job_line(up_id, up_row, now))
                if up_row is None or up_row.status != "success":
                    not_ready.append(up_id)
                elif why := incomplete_upstream(up_id, tracker.list_jobs(), storage, raw):
                    not_ready.append(f"{up_id} (success, but {why})")
            if spec.reads_earlier_dates:
                up_rows = upstream_rows(tracker.list_jobs(), spec.requires, date, earlier=True)
            # as the run's admission decides (engine.tracker.readers)
            locked = tracker.locked_jobs()
            readers = readers_of(locked, job_id, now, gone_here)
            reads = reads_of(spec.requires, date, spec.reads_earlier_dates)
            running = [] if reads is None else [r for r in running_upstream(locked, reads, now, gone_here)
                                                if r.job_id != job_id]
            guard.upstream = up_rows
            outdated = None if force else outdated_by(row, up_rows)
            foreign = foreign_outputs(spec, tracker.list_jobs())
            if foreign:  # refused before anything else (engine.run_command.refuse_foreign_outputs)
                verdict = f"a run would exit 2: {foreign[0]}"
            elif not_ready:
                verdict = f"a run would exit 3: upstream {', '.join(not_ready)} not successful"
            elif readers:
                verdict = f"a run would exit 4: {run_line(readers[0])} reads this job's data"
            elif running:
                verdict = f"a run would exit 3: upstream job {run_line(running[0])} is being run"
            elif outdated:
                guard.outdated_by = outdated  # the run recomputes every step, as with --force
                verdict = f"a run would recompute every step: {outdated}"
            elif row is not None and row.status == "success" and not force and \
                    (incomplete := incomplete_job(spec, date, tracker, storage, raw)):
                verdict = f"a run would run the job again: {incomplete}"
            elif row is not None and row.status == "success" and not force:
                job_done = True
                verdict = "a run would do nothing: the job already succeeded (use --force)"
            elif row is not None and row.lock_id and not row.lease_expired(now):
                verdict = f"a run would exit 4: running on {row.holder()}"
        elif tracker_note:
            lines.append(tracker_note)
            verdict = "a run would exit 2: it cannot open the job tracker (see above)"
        skip, reload = runner.resumable()
        resumable = skip | set(reload)
        refusals = {} if job_done else _preflight_refusals(runner, resumable, raw)
        if not verdict and refusals:
            name, (code, why) = next(iter(refusals.items()))
            verdict = f"a run would exit {code} before Spark starts: step {name}: {why}"
        if not verdict:
            count = sum(1 for n in runner.order if runner.selection.runs(n) and n not in resumable)
            verdict = f"a run would compute {count} of {len(runner.order)} steps"
        lines.append(f"verdict:  {verdict}")
        lines.append("steps (in order):")
        for i, name in enumerate(runner.order, start=1):
            step = spec.steps[name]
            if not runner.selection.runs(name):
                state = "not selected"
            elif job_done:
                state = "skip (job already succeeded; --force recomputes)"
            elif name in resumable:
                state = "skip (succeeded earlier; outputs exist)"
            elif name in runner.selection.feeders:
                state = "run as feeder (outputs not written)"
            else:
                state = "run"
            lines.append(f"  {i}. {name} [{step.kind}] -> {state}")
            for iname, ref in step.inputs.items():
                lines.append(f"       input  {iname} <- {ref}")
                missing = (_missing_dataset(spec, runner.selection.selected, storage, name, ref.dataset)
                           if ref.dataset and state.startswith("run") else None)
                if missing:
                    lines.append(f"       note   input {iname}: {missing}")
            for oname, out in step.outputs.items():
                part = f" partition_by {list(out.partition_by)}" if out.partition_by else ""
                lines.append(f"       output {oname} -> {out.path} ({out.mode}{part})")
            if name in refusals:
                lines.append(f"       note   would fail before Spark starts: {refusals[name][1]}")
            if step.depends_on:
                lines.append(f"       after  {', '.join(step.depends_on)}")
            if step.params:
                lines.append(f"       params {json.dumps(step.params, default=str, sort_keys=True)}")
            if step.sql:
                sql = " ".join(step.sql.split())
                lines.append(f"       sql    {sql[:160]}{'...' if len(sql) > 160 else ''}")
            if step.expectations:
                lines.append(f"       expect {', '.join(str(e.get('name')) for e in step.expectations)}")
        return "\n".join(lines)
    finally:
        if tracker is not None:
            tracker.close()
