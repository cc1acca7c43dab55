"""What the tracker says a step wrote, checked against what local storage still has."""

from __future__ import annotations

import datetime as dt

from engine.outputs_present import (
    PartitionLister,
    describe_gone,
    gone_from_step,
    gone_outputs,
    incomplete_upstream,
)
from engine.raw_inputs import stamp_folder
from engine.spec import OutputSpec, PipelineSpec, StepSpec
from engine.step_message import written_message
from engine.storage.local import LocalStorage
from engine.tracker.base import JobRow

DAY = dt.date(2024, 1, 5)


def _step(name: str, *outputs: OutputSpec) -> StepSpec:
    return StepSpec(name=name, transform="t", sql=None, inputs={}, params={}, outputs={o.name: o for o in outputs},
                    depends_on=())


def _out(name: str, path: str, mode: str = "overwrite_partitions") -> OutputSpec:
    return OutputSpec(name, path, ("trade_dt",), mode)


class CountingStorage(LocalStorage):
    listed: list[str]

    def list_dirs(self, rel_path: str) -> list[str]:
        self.listed.append(rel_path)
        return super().list_dirs(rel_path)


def _storage(tmp_path, *folders: str) -> CountingStorage:
    for folder in folders:
        (tmp_path / folder).mkdir(parents=True)
    storage = CountingStorage(tmp_path)
    storage.listed = []
    return storage



def test_partitions_gone_are_named_at_the_path_the_row_gives(tmp_path) -> None:
    storage = _storage(tmp_path, "x/a/trade_dt=2024-01-05", "exports/2024-01-05/b/trade_dt=2024-01-05")
    step = _step("s", _out("a", "x/a"), _out("b", "exports/2024-01-04/b"))  # the spec as rendered for another day
    lister = PartitionLister(storage)
    both = written_message({"a": ["trade_dt=2024-01-05"], "b": ["trade_dt=2024-01-05"]}, {}, {
        "a": "x/a", "b": "exports/2024-01-05/b"})
    assert gone_from_step(step, both, lister) == []
    (tmp_path / "x/a/trade_dt=2024-01-05").rmdir()
    assert gone_from_step(step, both, PartitionLister(storage)) == ["x/a/trade_dt=2024-01-05"]
    old_row = '{"partitions":{"b":["trade_dt=2024-01-05"]}}'  # written before rows named paths: the spec's path
    assert gone_from_step(step, old_row, PartitionLister(storage)) == ["exports/2024-01-04/b/trade_dt=2024-01-05"]
    assert gone_from_step(step, "", lister) == [] and gone_from_step(step, None, lister) == []  # nothing recorded
    appended = _step("s", _out("a", "x/a", mode="append"))
    assert gone_from_step(appended, both, PartitionLister(storage)) == []  # appends are never reused anyway


def test_a_job_lists_each_dataset_once_and_weighs_only_succeeded_steps(tmp_path) -> None:
    storage = _storage(tmp_path, "d/trade_dt=2024-01-04")
    steps = {"one": _step("one", _out("o", "d")), "two": _step("two", _out("t", "d")),
             "three": _step("three", _out("h", "d"))}
    spec = PipelineSpec(name="p", file="p.yaml", steps=steps)
    rows = {
        "p.one_2024-01-05": JobRow("p.one_2024-01-05", "success", None, None,
                                   message=written_message({"o": ["trade_dt=2024-01-05"]}, {}, {"o": "d"})),
        "p.two_2024-01-05": JobRow("p.two_2024-01-05", "success", None, None,
                                   message=written_message({"t": ["trade_dt=2024-01-04"]}, {}, {"t": "d"})),
        "p.three_2024-01-05": JobRow("p.three_2024-01-05", "failed", None, None,
                                     message=written_message({"h": ["trade_dt=2024-01-06"]}, {}, {"h": "d"})),
    }
    lister = PartitionLister(storage)
    gone = gone_outputs(spec, DAY, rows, lister)
    assert gone == ["d/trade_dt=2024-01-05"]
    assert gone_outputs(spec, DAY, rows, lister) == gone and storage.listed == ["d"]
    assert describe_gone(gone) == "partition(s) it wrote are gone from storage (d/trade_dt=2024-01-05)"
    assert describe_gone([f"d/{n}" for n in range(5)]).endswith("(d/0, d/1, d/2 and 2 more)")
    nothing = PartitionLister(_storage(tmp_path / "empty"))  # another warehouse: no dataset at all
    assert gone_outputs(spec, DAY, rows, nothing) == ["d/trade_dt=2024-01-05", "d/trade_dt=2024-01-04"]


def test_an_upstream_job_is_judged_from_its_step_rows_alone(tmp_path) -> None:
    """Another pipeline's job, known by name only: what its succeeded step rows of that date say they wrote
    and read is checked against storage and the raw root."""
    storage = _storage(tmp_path / "wh", "trade/trade_dt=2024-01-05")
    (tmp_path / "raw/csv/2024-01-05/NYSE").mkdir(parents=True)
    (tmp_path / "raw/csv/2024-01-05/NYSE/part-0.txt").write_text("a\n")
    raw = LocalStorage(tmp_path / "raw")
    stamp = stamp_folder(raw, "csv/2024-01-05").encode()

    def row(job: str, status: str, message: str) -> JobRow:
        return JobRow(job, status, None, None, message=message)

    rows = [row("pre_2024-01-05", "success", "pre 2024-01-05: success"),
            row("pre.ingest_2024-01-05", "success", written_message({}, {}, {}, {"csv/2024-01-05": stamp})),
            row("pre.eod_2024-01-05", "success",
                written_message({"trade": ["trade_dt=2024-01-05"]}, {}, {"trade": "trade"})),
            # another date, another pipeline, a failed step: not weighed
            row("pre.eod_2024-01-08", "success",
                written_message({"trade": ["trade_dt=2024-01-08"]}, {}, {"trade": "trade"})),
            row("other.eod_2024-01-05", "success", written_message({"x": ["trade_dt=2024-01-05"]}, {}, {"x": "x"})),
            row("pre.bad_2024-01-05", "failed", written_message({"q": ["trade_dt=2024-01-05"]}, {}, {"q": "q"}))]
    assert incomplete_upstream("pre_2024-01-05", rows, storage, raw) is None
    (tmp_path / "raw/csv/2024-01-05/NYSE/part-1.txt").write_text("late\n")
    (tmp_path / "wh/trade/trade_dt=2024-01-05").rmdir()
    assert incomplete_upstream("pre_2024-01-05", rows, storage, raw) == (
        "partition(s) it wrote are gone from storage (trade/trade_dt=2024-01-05); its raw input changed since it "
        "ran: csv/2024-01-05 (2 files, 0.0 MB; was 1 file, 0.0 MB)")
    assert incomplete_upstream("not a job id", rows, storage, raw) is None
