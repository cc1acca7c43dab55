"""Whether the partitions the job tracker says a job's steps wrote are still in storage.

The tracker alone cannot tell: a partition deleted by hand, a warehouse restored from an older backup or a
storage root pointed elsewhere leave the job 'success' while a later date's prior close silently reads an older
day. The step rows keep what each step wrote (``{"partitions": {output: [...]}}``), so a job whose partitions are
gone is run again: its steps whose partitions are intact are reused, the others recomputed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from engine.raw_inputs import RawStamper, changed_folders, changed_raw, describe_changed
from engine.spec import PipelineSpec, StepSpec
from engine.step_message import message_field, written_partitions
from engine.storage.base import Storage
from engine.tracker.base import parse_job_id, pipeline_job_id, step_job_id


class PartitionLister:
    """The top partition folders of each dataset, listed once however many dates and steps ask."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self._tops: dict[str, set[str]] = {}

    def missing(self, path: str, partitions: list[str]) -> list[str]:
        """Those of ``partitions`` (``trade_dt=2024-01-05`` or deeper) not in the dataset at ``path``."""
        if not partitions:
            return []
        if path not in self._tops:
            self._tops[path] = set(self.storage.list_dirs(path)) if self.storage.exists(path) else set()
        return sorted(p for p in partitions if p.split("/")[0] not in self._tops[path])


def _gone(message: str | None, spec_paths: Mapping[str, str], lister: PartitionLister) -> list[str]:
    """``dataset/partition`` of each partition a step's row ``message`` says it wrote that storage no longer
    has; an output's path is the one the row names, else ``spec_paths``' (rows written before rows named
    paths), else the output is not looked for."""
    written, paths = written_partitions(message) or {}, message_field(message, "paths") or {}
    gone: list[str] = []
    for oname in dict.fromkeys([*spec_paths, *written]):
        path = paths.get(oname) or spec_paths.get(oname)
        if path:
            gone += [f"{path}/{p}" for p in lister.missing(str(path), list(written.get(oname) or []))]
    return gone


def gone_from_step(step: StepSpec, message: str | None, lister: PartitionLister) -> list[str]:
    """``dataset/partition`` of each partition ``step`` wrote (per its row ``message``, at the path the row
    names, else the spec's) that storage no longer has."""
    if not step.outputs or any(out.mode == "append" for out in step.outputs.values()):
        return []
    return _gone(message, {oname: out.path for oname, out in step.outputs.items()}, lister)


def gone_outputs(spec: PipelineSpec, date: dt.date, rows: Mapping[str, Any], lister: PartitionLister) -> list[str]:
    """Partitions the job's succeeded steps wrote for ``date`` that storage no longer has (``rows``: the
    tracker's rows by job id)."""
    gone: list[str] = []
    for step in spec.steps.values():
        row = rows.get(step_job_id(spec.name, step.name, date))
        if row is not None and row.status == "success":
            gone += gone_from_step(step, row.message, lister)
    return gone


def describe_gone(gone: list[str]) -> str:
    """``its outputs' partitions ... are gone from storage`` for a message, the first few named."""
    shown = ", ".join(gone[:3]) + (f" and {len(gone) - 3} more" if len(gone) > 3 else "")
    return f"partition(s) it wrote are gone from storage ({shown})"


def not_complete(gone: list[str], changed: list[str]) -> str | None:
    """Why a succeeded job is not complete after all: partitions it wrote are gone, raw files it read changed."""
    reasons = ([describe_gone(gone)] if gone else []) + ([describe_changed(changed)] if changed else [])
    return "; ".join(reasons) or None


def incomplete_job(spec: PipelineSpec, date: dt.date, tracker: Any, storage: Storage, raw_storage: Storage
                   ) -> str | None:
    """Why the date's succeeded job is not complete after all (partitions it wrote are gone, raw files it read
    changed), else None."""
    row = tracker.get(pipeline_job_id(spec.name, date))
    if row is None or row.status != "success":
        return None
    rows = {job: tracker.get(job) for job in (step_job_id(spec.name, name, date) for name in spec.steps)}
    rows = {k: v for k, v in rows.items() if v is not None}
    gone = gone_outputs(spec, date, rows, PartitionLister(storage))
    changed = changed_raw(spec, date, rows, RawStamper(raw_storage))
    return not_complete(gone, changed)


def incomplete_upstream(job_id: str, rows: Iterable[Any], storage: Storage, raw_storage: Storage) -> str | None:
    """Why a succeeded job of a pipeline this one requires is not complete after all, from its step rows alone
    (its spec is not known here): partitions its steps wrote are gone, or raw files they read changed."""
    key = parse_job_id(job_id)
    if key is None:
        return None
    steps = [r for r in rows if r.status == "success" and (k := parse_job_id(r.job_id)) is not None
             and k.step is not None and (k.pipeline, k.date) == (key.pipeline, key.date)]
    lister, stamper = PartitionLister(storage), RawStamper(raw_storage)
    gone = [g for r in steps for g in _gone(r.message, {}, lister)]
    changed = list(dict.fromkeys(c for r in steps for c in changed_folders(r.message, stamper)))
    return not_complete(gone, changed)
