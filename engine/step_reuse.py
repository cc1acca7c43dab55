"""Which steps of a rerun may be reused, apart from running them: the decision reads only the spec, the tracker's
step rows and what storage holds, so the plan can show it and tests can check it without Spark or a run."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from engine.dag import Dag
from engine.outputs_present import PartitionLister, gone_from_step
from engine.raw_inputs import RawStamper, changed_folders
from engine.registry import Registry
from engine.selection import Selection
from engine.spec import InputRef, PipelineSpec, StepSpec
from engine.step_definition import code_digest, definition_digest
from engine.step_message import recorded_definition, written_partitions
from engine.storage.base import Storage

log = logging.getLogger("tickflow.runner")  # the run's own decisions: logged as the runner's


@dataclass
class StepReuse:
    """The reuse decision of one run of ``spec`` for ``date``: what it reads, and the digests it computed."""

    spec: PipelineSpec
    dag: Dag
    order: list[str]
    selection: Selection
    guard: Any
    storage: Storage
    raw_storage: Storage
    registry: Registry
    date: dt.date | None
    force: bool
    _definitions: dict[str, str] = field(default_factory=dict, init=False, repr=False)  # step -> its digest

    def resumable(self) -> tuple[set[str], dict[str, dict[str, list[str]]]]:
        """Steps a rerun need not compute: (skipped, reloaded).

        A selected step is *fresh* when it succeeded for this date, its outputs exist and none is append-mode
        (appends cannot be isolated). A step is *dirty* when a step upstream of it (through steps without
        outputs and feeders too) rewrites its outputs in this run: its own outputs were computed from data
        that is being replaced, so it reruns even when fresh. A fresh step that is not dirty is skipped when
        no running step needs its result, and *reloaded* from its committed outputs (the partitions it wrote)
        when running steps read only outputs it wrote; otherwise it is recomputed, and rewrites its outputs
        too, which can make more steps dirty: repeated until nothing changes.
        """
        if self.force or getattr(self.guard, "outdated_by", None):  # outdated: its inputs were replaced
            return set(), {}
        selected = self.selection.selected
        fresh = {name for name in self.order if name in selected and self._fresh(self.spec.steps[name])}
        rewritten = {name for name in selected if self.spec.steps[name].outputs and name not in fresh}
        partitions: dict[str, dict[str, list[str]] | None] = {}
        while True:
            dirty = self._dirty(rewritten)
            skip, reload = self._reusable(fresh - dirty, dirty, partitions)
            running = {name for name in selected if self.spec.steps[name].outputs
                       and name not in skip and name not in reload}
            if running <= rewritten:
                return skip, reload
            rewritten |= running  # recomputed though fresh: what it rewrites makes its downstream steps dirty

    def _fresh(self, step: StepSpec) -> bool:
        """Succeeded for this date, outputs exist, none appends: may be reused unless an upstream step reruns."""
        if not step.outputs or any(o.mode == "append" for o in step.outputs.values()):
            return False
        return (self.guard.step_succeeded(step.name) and not self._redefined(step) and self._outputs_present(step)
                and not self._raw_changed(step))

    def definition(self, name: str) -> str:
        """The digest of what step ``name`` computes (engine.step_definition), upstream steps included."""
        if name not in self._definitions:
            step = self.spec.steps[name]
            tdef = self.registry.get(step.transform) if step.transform else None
            self._definitions[name] = definition_digest(
                step, code_digest(tdef.func) if tdef is not None else "",
                [self.definition(parent) for parent in self.dag.parents[name]])
        return self._definitions[name]

    def _redefined(self, step: StepSpec) -> bool:
        """The step is no longer defined as when it succeeded (params, SQL, code, an upstream step): its outputs
        are not this spec's. A row from before digests were kept says nothing, and counts as unchanged."""
        recorded = recorded_definition(self._step_message(step.name))
        if recorded is None or recorded == self.definition(step.name):
            return False
        log.info("step %s: its definition (params, SQL, transform code or a step it reads) changed since it "
                 "succeeded for %s; computing it again", step.name, self.date)
        return True

    def _outputs_present(self, step: StepSpec) -> bool:
        """Each output exists with every partition the step wrote for this date: a partition deleted by hand
        since (or lost with a restored backup) makes the step run again rather than leave the date short."""
        if not all(self.storage.exists(o.path) for o in step.outputs.values()):
            return False
        gone = gone_from_step(step, self._step_message(step.name), PartitionLister(self.storage))
        if gone:
            log.info("step %s: %s, written for %s, is gone; computing it again", step.name, ", ".join(gone),
                     self.date)
        return not gone

    def _raw_changed(self, step: StepSpec) -> bool:
        """The raw files the step read when it succeeded are no longer those files (a late or re-sent file)."""
        changed = changed_folders(self._step_message(step.name), RawStamper(self.raw_storage))
        if changed:
            log.info("step %s: its raw input for %s changed since it succeeded (%s); computing it again",
                     step.name, self.date, "; ".join(changed))
        return bool(changed)

    def _dirty(self, rewritten: set[str]) -> set[str]:
        """``rewritten`` and every step downstream of one of them."""
        dirty: set[str] = set()
        for name in self.order:
            if name in rewritten or self.dag.parents[name] & dirty:
                dirty.add(name)
        return dirty

    def _reusable(self, fresh: set[str], dirty: set[str], partitions: dict[str, dict[str, list[str]] | None]
                  ) -> tuple[set[str], dict[str, dict[str, list[str]]]]:
        """Of the selected steps that are not dirty: which are skipped and which reloaded (see ``resumable``);
        consumers come first, since whether a step's result is needed depends on which of them run."""
        skip: set[str] = set()
        reload: dict[str, dict[str, list[str]]] = {}
        for name in reversed(self.order):
            if name not in self.selection.selected or name in dirty:
                continue
            step = self.spec.steps[name]
            consumers = [c for c in self.dag.children(name) if self.selection.runs(c)]
            running = [c for c in consumers if c not in skip and c not in reload]
            if not step.outputs:
                if consumers and not running:
                    skip.add(name)  # a pure read needed by nobody that runs
                continue
            if name not in fresh:
                continue
            if not running:
                skip.add(name)
                continue
            if name not in partitions:
                partitions[name] = self.written_partitions(name)
            written = partitions[name]
            needed = {self.needed_output(step, ref) for c in running
                      for ref in self.spec.steps[c].inputs.values() if ref.step == name}
            if written is not None and all(o in step.outputs and (o in written or not step.outputs[o].partition_by)
                                           for o in needed):
                reload[name] = written
        return skip, reload

    def needed_output(self, step: StepSpec, ref: InputRef) -> str:
        """The spec output name a reference reads (single-output steps have one)."""
        if len(step.declared_outputs) == 1 and len(step.outputs) == 1:
            return next(iter(step.outputs))
        return ref.output or step.default_output()

    def written_partitions(self, name: str) -> dict[str, list[str]] | None:
        return written_partitions(self._step_message(name))

    def _step_message(self, name: str) -> str | None:
        """The message of the step's tracker row for this date: what it wrote when it succeeded."""
        tracker = getattr(self.guard, "tracker", None)
        if tracker is None or self.date is None:
            return None
        from engine.tracker.base import step_job_id

        row = tracker.get(step_job_id(self.spec.name, name, self.date))
        return row.message if row is not None else None
