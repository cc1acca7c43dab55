"""Which steps of a rerun are reused (engine.step_reuse): decided from the spec, the tracker's step rows and what
storage holds, without Spark or a run."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from types import SimpleNamespace

import pytest

from engine.config import Config, StorageConfig, TrackerConfig
from engine.dag import dag_of
from engine.registry import REGISTRY
from engine.runner import PipelineRunner
from engine.selection import Selection, select_all
from engine.spec import InputRef, OutputSpec, PipelineSpec, StepSpec
from engine.spec_loader import load_spec
from engine.step_message import written_message
from engine.step_reuse import StepReuse
from engine.storage.local import LocalStorage
from engine.tracker.base import step_job_id
from engine.tracker.factory import open_tracker
from engine.tracker.guard import JobGuard

DATE = dt.date(2024, 1, 5)
PART = f"day={DATE}"

DIAMOND = """
pipeline: diamond
modules: [{mod}]
steps:
  base:
    transform: t_numbers
    outputs: {{base: {{path: d/base, partition_by: [day]}}}}
  view:
    sql: SELECT * FROM base
    inputs: {{base: base}}
  left:
    sql: SELECT * FROM view
    inputs: {{view: view}}
    outputs: {{left: {{path: d/left, partition_by: [day]}}}}
  right:
    sql: SELECT * FROM base
    inputs: {{base: base}}
    outputs: {{right: {{path: d/right, partition_by: [day]}}}}
"""


@pytest.fixture
def plan_resume(tmp_path, write_spec, test_transforms_module):
    """``plan(marks)``: what a rerun would skip and reload, given step rows of the tracker (no Spark)."""
    spec_path = write_spec(DIAMOND.format(mod=test_transforms_module))
    config = Config(storage=StorageConfig(root=str(tmp_path / "wh")),
                    tracker=TrackerConfig(sqlite_path=str(tmp_path / "t.sqlite")), base_dir=tmp_path)
    storage = LocalStorage(tmp_path / "wh")
    for rel in ("d/base/day=2024-01-05", "d/left/day=2024-01-05", "d/right/day=2024-01-05"):
        (tmp_path / "wh" / rel).mkdir(parents=True)
    written = '{"partitions":{"base":["day=2024-01-05"]},"rows":{"base":10}}'

    def plan(marks: dict[str, str], reloadable: bool = True) -> tuple[set[str], set[str]]:
        spec = load_spec(spec_path, date=DATE, config=config)
        with open_tracker(config) as tracker:
            for step, status in marks.items():
                message = written if step == "base" and reloadable else ""
                tracker.set_status(f"diamond.{step}_{DATE.isoformat()}", status, message)
            runner = PipelineRunner(spec, config, date=DATE, storage=storage, raw_storage=storage,
                                    registry=REGISTRY, spark_provider=lambda: None,
                                    guard=JobGuard(tracker, spec.name, DATE))
            skip, reload = runner.resumable()
        return skip, set(reload)

    return plan


def test_a_step_is_not_reused_while_a_step_upstream_of_it_reruns(plan_resume):
    # all fresh: nothing runs (the output-less view is needed by no running step)
    assert plan_resume({"base": "success", "left": "success", "right": "success"}) == (
        {"base", "view", "left", "right"}, set())
    # left reruns and reads base through view: base is reloaded from its committed partition, right reused
    assert plan_resume({"base": "success", "left": "failed", "right": "success"}) == ({"right"}, {"base"})
    # base failed (or was left 'running' by a killed run of an older version): whatever marks its downstream
    # steps have, they were computed from base's old outputs, and view passes that on to left
    assert plan_resume({"base": "running", "left": "success", "right": "success"}) == (set(), set())
    # base is fresh but cannot be reloaded (no record of the partitions it wrote), so left's rerun recomputes
    # and rewrites it: right, fresh by its own mark, reruns as well
    assert plan_resume({"base": "success", "left": "failed", "right": "success"}, reloadable=False) == (
        set(), set())


# -- StepReuse alone: a spec built in code, a guard, tracker and storage that only answer ------------------------

def _step(name: str, *reads: str, mode: str = "overwrite_partitions", outputs: bool = True) -> StepSpec:
    return StepSpec(name=name, transform=None, sql=f"SELECT * FROM {name}", inputs={r: InputRef(step=r) for r in reads},
                    params={}, outputs={name: OutputSpec(name, f"d/{name}", ("day",), mode)} if outputs else {},
                    depends_on=())


@dataclass
class Guard:
    """What StepReuse asks of a JobGuard: whether a step succeeded, whether the job is outdated, the tracker."""

    succeeded: set[str]
    rows: dict[str, str] = field(default_factory=dict)  # job id -> its row's message
    outdated_by: str | None = None

    def step_succeeded(self, name: str) -> bool:
        return name in self.succeeded

    @property
    def tracker(self) -> SimpleNamespace:
        return SimpleNamespace(get=lambda job: SimpleNamespace(message=self.rows[job]) if job in self.rows else None)


class Storage:
    """Datasets with their partition folders; nothing else is there."""

    def __init__(self, datasets: dict[str, list[str]]):
        self.datasets = datasets

    def exists(self, rel: str) -> bool:
        return rel in self.datasets

    def list_dirs(self, rel: str) -> list[str]:
        return sorted(self.datasets.get(rel, []))


def _reuse(steps: list[StepSpec], guard: Guard, storage: Storage | None = None, *, force: bool = False,
           selection: Selection | None = None) -> StepReuse:
    spec = PipelineSpec(name="p", file="p.yaml", steps={s.name: s for s in steps})
    dag = dag_of(spec.steps)
    storage = storage or Storage({f"d/{s.name}": [PART] for s in steps})
    return StepReuse(spec, dag, dag.order(), selection or select_all(dag), guard, storage, storage, REGISTRY, DATE,
                     force)


def _wrote(name: str, definition: str | None = None) -> dict[str, str]:
    """The tracker row of a step that wrote this date's partition of its dataset."""
    return {step_job_id("p", name, DATE): written_message({name: [PART]}, {name: 3}, {name: f"d/{name}"},
                                                          definition=definition)}


CHAIN = [_step("a"), _step("b", "a"), _step("c", "b")]


def test_fresh_steps_are_skipped_and_force_or_an_outdated_job_reuses_nothing():
    every = Guard(succeeded={"a", "b", "c"})
    assert _reuse(CHAIN, every).resumable() == ({"a", "b", "c"}, {})
    assert _reuse(CHAIN, every, force=True).resumable() == (set(), {})
    assert _reuse(CHAIN, Guard(succeeded={"a", "b", "c"}, outdated_by="up_2024-01-05")).resumable() == (set(), {})


def test_a_step_that_did_not_succeed_reruns_with_its_downstream_and_its_upstream_is_reloaded_if_it_can_be():
    rows = _wrote("a")
    assert _reuse(CHAIN, Guard(succeeded={"a", "c"}, rows=rows)).resumable() == (set(), {"a": {"a": [PART]}})
    # no record of what a wrote: it cannot be reloaded, so it is recomputed, and everything after it too
    assert _reuse(CHAIN, Guard(succeeded={"a", "c"})).resumable() == (set(), {})


def test_an_output_gone_from_storage_or_appended_to_makes_the_step_rerun():
    storage = Storage({"d/a": [PART], "d/c": [PART]})  # b's dataset is gone
    assert _reuse(CHAIN, Guard(succeeded={"a", "b", "c"}, rows=_wrote("a")), storage).resumable() == (
        set(), {"a": {"a": [PART]}})
    partition_gone = Storage({"d/a": [PART], "d/b": [], "d/c": [PART]})  # b's folder is there, its partition not
    assert _reuse(CHAIN, Guard(succeeded={"a", "b", "c"}, rows={**_wrote("a"), **_wrote("b")}),
                  partition_gone).resumable() == (set(), {"a": {"a": [PART]}})
    appending = [_step("a"), _step("b", "a", mode="append"), _step("c", "b")]  # appends cannot be isolated
    assert _reuse(appending, Guard(succeeded={"a", "b", "c"}, rows=_wrote("a"))).resumable() == (
        set(), {"a": {"a": [PART]}})


def test_a_step_redefined_since_it_succeeded_reruns_and_an_unchanged_one_is_reused():
    reuse = _reuse(CHAIN, Guard(succeeded={"a", "b", "c"}))
    rows = {**_wrote("a"), **_wrote("b", reuse.definition("b")), **_wrote("c", "0123456789abcdef")}
    assert _reuse(CHAIN, Guard(succeeded={"a", "b", "c"}, rows=rows)).resumable() == ({"a"}, {"b": {"b": [PART]}})
    rows.update(_wrote("c", reuse.definition("c")))
    assert _reuse(CHAIN, Guard(succeeded={"a", "b", "c"}, rows=rows)).resumable() == ({"a", "b", "c"}, {})


def test_a_definition_digest_follows_the_steps_upstream():
    edited = [_step("a"), _step("b", "a"), replace(CHAIN[2], sql="SELECT 2")]
    before, after = _reuse(CHAIN, Guard(set())), _reuse(edited, Guard(set()))
    assert before.definition("a") == after.definition("a") and before.definition("b") == after.definition("b")
    assert before.definition("c") != after.definition("c")
    upstream_edited = [replace(CHAIN[0], sql="SELECT 2"), *CHAIN[1:]]
    assert _reuse(upstream_edited, Guard(set())).definition("c") != before.definition("c")


def test_a_step_without_outputs_is_skipped_only_when_no_running_step_needs_it():
    steps = [_step("a"), _step("view", "a", outputs=False), _step("b", "view")]
    assert _reuse(steps, Guard(succeeded={"a", "b"})).resumable() == ({"a", "view", "b"}, {})
    assert _reuse(steps, Guard(succeeded={"a"}, rows=_wrote("a"))).resumable() == (set(), {"a": {"a": [PART]}})


@pytest.mark.parametrize("declared,written,ref,needed", [
    (("out",), ("bars",), InputRef(step="s"), "bars"),  # one output: any reference reads it
    (("out",), ("bars",), InputRef(step="s", output="out"), "bars"),
    (("even", "odd"), ("even", "odd"), InputRef(step="s"), "even"),  # the default: the first declared
    (("even", "odd"), ("even", "odd"), InputRef(step="s", output="odd"), "odd"),
])
def test_the_output_a_reference_reads(declared, written, ref, needed):
    step = StepSpec(name="s", transform=None, sql="SELECT 1", inputs={}, params={}, depends_on=(),
                    outputs={o: OutputSpec(o, f"d/{o}") for o in written}, declared_outputs=declared)
    assert _reuse([step], Guard(set())).needed_output(step, ref) == needed
