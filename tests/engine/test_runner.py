"""The runner on real Spark: multi-step pipelines, SQL steps, multi-output transforms, atomic outputs."""

from __future__ import annotations

import datetime as dt
import importlib
import itertools
import threading

import pytest

from engine.config import Config, StorageConfig
from engine.errors import StepFailed
from engine.registry import REGISTRY
from engine.runner import NullGuard, PipelineRunner, RunOptions
from engine.spec_loader import load_spec
from engine.storage.local import LocalStorage
from engine.tracker.base import LeaseLost

D1, D2 = dt.date(2024, 1, 4), dt.date(2024, 1, 5)

SPEC = """
pipeline: demo
modules: [{mod}]
vars: {{n: 10}}
steps:
  nums:
    transform: t_numbers
    params: {{n: "{{{{ vars.n }}}}"}}
    outputs: {{nums: {{path: demo/nums, partition_by: [day]}}}}
  split:
    transform: t_split
    inputs: {{df: nums}}
    outputs:
      even: {{path: demo/even, partition_by: [day]}}
  odd_total:
    sql: SELECT day, count(*) AS n, sum(id) AS s FROM odd GROUP BY day
    inputs: {{odd: split.odd}}
    outputs: {{odd_total: {{path: demo/odd_total, partition_by: [day]}}}}
"""


@pytest.fixture
def env(tmp_path, write_spec, test_transforms_module, spark):
    config = Config(storage=StorageConfig(root=str(tmp_path / "wh"), raw_root=str(tmp_path / "raw")),
                    base_dir=tmp_path)
    storage = LocalStorage(tmp_path / "wh")
    path = write_spec(SPEC.format(mod=test_transforms_module))

    def run(date, n=10, select=(), spec_path=path, parallel=2):
        overrides = {"n": n} if n is not None else {}  # None: the spec declares no vars
        spec = load_spec(spec_path, date=date, var_overrides=overrides, config=config)
        runner = PipelineRunner(spec, config, date=date, storage=storage, raw_storage=LocalStorage(tmp_path / "raw"),
                                registry=REGISTRY, spark_provider=lambda: spark,
                                options=RunOptions(selectors=tuple(select), parallel_steps=parallel))
        return runner.run()

    return run, storage, spark


def read(spark, storage, rel):
    return sorted(tuple(r) for r in spark.read.parquet(storage.read_uri(rel)).collect())


def test_multi_step_pipeline_outputs(env):
    run, storage, spark = env
    record = run(D1, n=10)
    assert record.status == "success"
    assert [s.name for s in record.steps] == ["nums", "split", "odd_total"]
    assert record.step("nums").rows_out == {"nums": 10}
    assert record.step("split").rows_out == {"even": 5}
    even = spark.read.parquet(storage.read_uri("demo/even")).collect()
    assert sorted(r["id"] for r in even) == [0, 2, 4, 6, 8]
    total = spark.read.parquet(storage.read_uri("demo/odd_total")).collect()
    assert [(str(r["day"]), r["n"], r["s"]) for r in total] == [("2024-01-04", 5, 1 + 3 + 5 + 7 + 9)]
    assert record.step("odd_total").metrics["partitions_written"] == {"odd_total": ["day=2024-01-04"]}


def test_rerun_replaces_only_that_dates_partition(env):
    run, storage, spark = env
    run(D1, n=10)
    run(D2, n=4)
    run(D1, n=6)  # rerun of D1 with other data
    rows = spark.read.parquet(storage.read_uri("demo/nums")).groupBy("day").count().collect()
    assert {str(r["day"]): r["count"] for r in rows} == {"2024-01-04": 6, "2024-01-05": 4}


def test_failed_step_leaves_previous_output_intact(env, write_spec, test_transforms_module):
    run, storage, spark = env
    run(D1, n=10)
    before = read(spark, storage, "demo/even")
    broken = SPEC.format(mod=test_transforms_module).replace("transform: t_split", "transform: t_spark_fail")
    broken = broken.replace("outputs:\n      even: {path: demo/even", "outputs:\n      out: {path: demo/even")
    broken = broken.replace("split.odd", "split")
    path = write_spec(broken, "broken.yaml")
    with pytest.raises(StepFailed) as info:
        run(D1, n=8, spec_path=path)
    msg = str(info.value)
    assert "step 'split' (t_spark_fail) failed" in msg and "no_such_column" in msg
    assert "\n" not in msg and len(msg) < 500
    assert read(spark, storage, "demo/even") == before
    assert not list((storage.path / ".tickflow_staging").rglob("*.parquet"))


def test_selection_runs_feeders_without_writing(env):
    run, storage, spark = env
    record = run(D1, n=10, select=["split"])
    assert record.step("nums").rows_out == {}  # fed split in memory, not written
    assert record.step("split").rows_out == {"even": 5}
    assert record.step("odd_total").status == "skipped"
    assert not storage.exists("demo/nums") and not storage.exists("demo/odd_total")


def test_replace_partitions_empties_the_runs_partition_when_a_rerun_writes_no_rows(env, write_spec,
                                                                                    test_transforms_module):
    run, storage, spark = env
    path = write_spec(f"""
pipeline: owned
modules: [{test_transforms_module}]
vars: {{n: 3}}
steps:
  nums:
    transform: t_numbers
    params: {{n: "{{{{ vars.n }}}}"}}
    outputs:
      nums: {{path: owned/nums, partition_by: [day], replace_partitions: {{day: "{{{{ date }}}}"}}}}
""", "owned.yaml")
    run(D1, n=3, spec_path=path)
    run(D2, n=2, spec_path=path)
    record = run(D1, n=0, spec_path=path)  # the rerun of D1 has no rows at all
    assert record.step("nums").rows_out == {"nums": 0}
    rows = spark.read.parquet(storage.read_uri("owned/nums")).groupBy("day").count().collect()
    assert {str(r["day"]): r["count"] for r in rows} == {"2024-01-05": 2}  # D1 emptied, D2 untouched


EXPECT_SPEC = """
pipeline: checked
modules: [{mod}]
vars: {{n: 10}}
steps:
  nums:
    transform: t_numbers
    params: {{n: "{{{{ vars.n }}}}"}}
    outputs: {{nums: {{path: checked/nums, partition_by: [day]}}}}
    expectations:
      - {{name: small, expr: "id < 7", action: warn}}
      - {{name: not_three, expr: "id != 3", action: drop}}
      - {{name: id_unique, unique: [id], action: warn}}
      - {{name: enough, row_count: {{min: 1}}}}
      - {{name: ids_present, not_null: [id, day]}}
      - {{name: {last_name}, expr: "{last_expr}", action: fail}}
"""


def test_expectations_are_counted_on_the_write_and_a_failure_commits_nothing(env, write_spec,
                                                                             test_transforms_module):
    """Counts observed while writing (warn, drop, row_count, not_null) plus a unique check on the staged files;
    a failing `fail` expectation names itself, shows violating rows and leaves the dataset as it was."""
    run, storage, spark = env
    ok = write_spec(EXPECT_SPEC.format(mod=test_transforms_module, last_name="non_negative", last_expr="id >= 0"),
                    "checked.yaml")
    record = run(D1, n=10, spec_path=ok)
    step = record.step("nums")
    kept = [i for i in range(10) if i != 3]
    assert step.rows_out == {"nums": len(kept)}
    assert step.metrics["dropped_by_expectations"] == {"nums": 1}
    by = {r.name: r for r in step.expectations}
    assert (by["small"].passed, by["small"].failed) == (sum(i < 7 for i in kept), sum(i >= 7 for i in kept))
    assert (by["not_three"].passed, by["not_three"].failed) == (len(kept), 1)
    assert by["id_unique"].ok and by["enough"].ok and by["ids_present"].ok and by["non_negative"].ok
    assert sorted(r[0] for r in read(spark, storage, "checked/nums")) == kept
    before = read(spark, storage, "checked/nums")

    bad = write_spec(EXPECT_SPEC.format(mod=test_transforms_module, last_name="below_five", last_expr="id < 5"),
                     "checked_bad.yaml")
    with pytest.raises(StepFailed) as info:
        run(D1, n=12, spec_path=bad)  # other rows than the committed ones, so a commit would show
    rerun_kept = [i for i in range(12) if i != 3]
    violating = sum(i >= 5 for i in rerun_kept)
    assert f"expectation 'below_five' (id < 5) failed for {violating} of {len(rerun_kept)} rows" in str(info.value)
    assert read(spark, storage, "checked/nums") == before


PAIR_SPEC = """
pipeline: pair
modules: [{mod}]
vars: {{n: 10}}
steps:
  nums:
    transform: t_numbers
    params: {{n: "{{{{ vars.n }}}}"}}
  split:
    transform: t_split
    inputs: {{df: nums}}
    outputs:
      even: {{path: pair/even, partition_by: [day]}}
      odd: {{path: pair/odd, partition_by: [day]}}
    expectations:
      - {{name: odd_small, output: odd, expr: "id < {limit}", action: fail}}
"""


@pytest.mark.parametrize("parallel", [1, 2], ids=["outputs-one-by-one", "outputs-together"])
def test_a_step_whose_one_output_fails_publishes_none_of_its_outputs(env, write_spec, test_transforms_module,
                                                                     parallel):
    """A failed step leaves the previous good output in place, all of it: not new even rows beside old odd
    ones (for the EOD load: not new trades beside old quotes)."""
    run, storage, spark = env
    ok = write_spec(PAIR_SPEC.format(mod=test_transforms_module, limit=100), "pair_ok.yaml")
    assert run(D1, n=10, spec_path=ok, parallel=parallel).status == "success"
    even, odd = read(spark, storage, "pair/even"), read(spark, storage, "pair/odd")
    assert [r[0] for r in even] == [0, 2, 4, 6, 8] and [r[0] for r in odd] == [1, 3, 5, 7, 9]

    bad = write_spec(PAIR_SPEC.format(mod=test_transforms_module, limit=12), "pair_bad.yaml")
    with pytest.raises(StepFailed, match="odd_small"):
        run(D1, n=16, spec_path=bad, parallel=parallel)  # odd 13 and 15 fail; even alone would pass
    assert read(spark, storage, "pair/even") == even
    assert read(spark, storage, "pair/odd") == odd


def test_a_commit_that_fails_leaves_the_later_outputs_unpublished_and_their_staging_removed(
        env, write_spec, test_transforms_module, monkeypatch):
    """A file-system error while publishing the first output (a full disk): the step fails naming the cause, and
    the second output keeps its old data, its staged files removed."""
    run, storage, spark = env
    ok = write_spec(PAIR_SPEC.format(mod=test_transforms_module, limit=100), "pair_ok.yaml")
    assert run(D1, n=10, spec_path=ok).status == "success"
    odd = read(spark, storage, "pair/odd")
    real_commit = storage._commit

    def commit(pending, plan):
        if pending.rel_path == "pair/even":
            raise OSError(28, "No space left on device")
        return real_commit(pending, plan)

    monkeypatch.setattr(storage, "_commit", commit)
    with pytest.raises(StepFailed, match="No space left on device"):
        run(D1, n=16, spec_path=ok)
    assert read(spark, storage, "pair/odd") == odd
    left = [p for p in (storage.path / ".tickflow_staging").rglob("*") if p.is_file()]
    assert not [p for p in left if "pair/odd" in p.as_posix()]  # (the failed one's goes with the next run)


READ_SPEC = """
pipeline: reader
steps:
  days:
    transform: read_dataset
    params: {{path: src, partitions: {{day: "{day}"}}}}
  counted:
    sql: SELECT day, count(*) AS n FROM days GROUP BY day
    outputs: {{counted: {{path: counted, partition_by: [day]}}}}
"""


def test_a_folder_inside_a_partition_is_refused_not_read_as_more_rows(env, write_spec):
    """A backup copy left inside a date's partition (trade_dt=.../old/) would double the date's rows."""
    import shutil

    run, storage, spark = env
    spark.range(5).selectExpr("id", f"DATE'{D1}' AS day").write.partitionBy("day").parquet(str(storage.path / "src"))
    spec = write_spec(READ_SPEC.format(day=D1), "reader.yaml")
    assert run(D1, n=None, spec_path=spec).status == "success"
    assert read(spark, storage, "counted") == [(5, D1)]
    part = storage.path / "src" / f"day={D1}"
    shutil.copytree(part, part / "old", ignore=shutil.ignore_patterns("old"))
    (part / "_temporary").mkdir()  # hidden folders are Spark's own business
    with pytest.raises(StepFailed, match=rf"dataset 'src' holds folder\(s\) that are not partitions: day={D1}/old;"):
        run(D1, n=None, spec_path=spec)
    assert read(spark, storage, "counted") == [(5, D1)]


# -- concurrent steps ----------------------------------------------------------------------------------------
MEET_SPEC = """
pipeline: meet
modules: [{mod}]
steps:
  a:
    transform: t_meet
    params: {{barrier: {barrier}, n: 4}}
    outputs: {{a: {{path: meet/a, partition_by: [day]}}}}
  b:
    transform: t_meet
    params: {{barrier: {barrier}, n: 6, fail: {fail}}}
    outputs: {{b: {{path: meet/b, partition_by: [day]}}}}
  a_total:
    sql: SELECT day, count(*) AS n FROM src GROUP BY day
    inputs: {{src: a}}
    outputs: {{a_total: {{path: meet/a_total, partition_by: [day]}}}}
  both:
    sql: SELECT day, count(*) AS n FROM (SELECT * FROM src UNION ALL SELECT * FROM other) GROUP BY day
    inputs: {{src: a, other: b}}
    outputs: {{both: {{path: meet/both, partition_by: [day]}}}}
"""


def meet_spec(write_spec, module, *, fail=False, parties=2):
    """Steps a and b each wait for the other inside their transform: the run only gets past them when both run
    at the same time (a broken barrier fails them after 60 s instead of hanging)."""
    name = f"b{threading.get_ident()}_{fail}_{parties}"
    importlib.import_module(module).BARRIERS[name] = threading.Barrier(parties, timeout=60)
    text = MEET_SPEC.format(mod=module, barrier=name, fail="true" if fail else "false")
    return write_spec(text, f"meet_{fail}.yaml")


def test_independent_steps_run_at_the_same_time_and_dependents_wait(env, write_spec, test_transforms_module):
    run, storage, spark = env
    record = run(D1, n=None, spec_path=meet_spec(write_spec, test_transforms_module))
    assert record.status == "success"
    steps = {s.name: s for s in record.steps}
    for child, parents in (("a_total", ["a"]), ("both", ["a", "b"])):
        assert all(steps[child].started >= steps[p].ended for p in parents), child
    assert read(spark, storage, "meet/a_total") == [(4, D1)]
    assert read(spark, storage, "meet/both") == [(10, D1)]
    staging = storage.path / ".tickflow_staging"
    assert not staging.exists()  # a finished run removes even the empty base folder


def test_one_step_at_a_time_when_parallel_is_one(env):
    run, storage, spark = env
    record = run(D1, n=10, parallel=1)
    assert record.status == "success"
    spans = sorted((s.started, s.ended) for s in record.steps)
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))
    assert read(spark, storage, "demo/odd_total") == [(5, 25, D1)]


def test_a_failing_step_lets_the_running_one_finish_and_starts_nothing_after(env, write_spec,
                                                                             test_transforms_module):
    run, storage, spark = env
    with pytest.raises(StepFailed) as info:
        run(D1, n=None, spec_path=meet_spec(write_spec, test_transforms_module, fail=True))
    assert "step 'b' (t_meet) failed" in str(info.value)
    assert read(spark, storage, "meet/a") == [(i, D1) for i in range(4)]  # ran beside b, committed
    assert not storage.exists("meet/b") and not storage.exists("meet/both")


def test_a_multi_output_step_writes_its_outputs_together(env, write_spec, test_transforms_module):
    run, storage, spark = env
    both = SPEC.format(mod=test_transforms_module).replace(
        "      even: {path: demo/even, partition_by: [day]}",
        "      even: {path: demo/even, partition_by: [day]}\n      odd: {path: demo/odd, partition_by: [day]}")
    record = run(D1, n=9, spec_path=write_spec(both, "both.yaml"))
    assert record.step("split").rows_out == {"even": 5, "odd": 4}
    assert [r[0] for r in read(spark, storage, "demo/even")] == [0, 2, 4, 6, 8]
    assert [r[0] for r in read(spark, storage, "demo/odd")] == [1, 3, 5, 7]
    staging = storage.path / ".tickflow_staging"
    assert not staging.exists()  # a finished run removes even the empty base folder


def test_a_chart_that_cannot_be_drawn_costs_a_chart_not_the_step(env, write_spec, test_transforms_module):
    from engine.reporting import build_charts

    run, storage, spark = env
    text = SPEC.format(mod=test_transforms_module).replace("steps:\n", (
        "report:\n  charts:\n"
        "    - {title: Broken, source: nums, kind: bar, x: id, y: no_such_col}\n"
        "    - {title: Fine, source: nums, kind: bar, x: id, y: id}\nsteps:\n"), 1)
    path = write_spec(text)
    config = Config(storage=StorageConfig(root=str(storage.root), raw_root=str(storage.root)))
    spec = load_spec(path, date=D1, config=config)
    runner = PipelineRunner(spec, config, date=D1, storage=storage, raw_storage=storage, registry=REGISTRY,
                            spark_provider=lambda: spark)
    record = runner.run()
    assert record.status == "success" and record.step("nums").status == "success"
    assert record.step("odd_total").status == "success"  # the steps after it ran
    broken, fine = build_charts(runner, record)
    assert "not drawn" in broken.svg and "no_such_col" in broken.note
    assert "not drawn" not in fine.svg


class _Marks(NullGuard):
    def __init__(self):
        self.marks: list[tuple[str, str, str]] = []

    def mark_step(self, step, status, message=""):
        self.marks.append((step, status, message))


def test_a_preflight_refusal_fails_the_step_before_spark_starts(tmp_path, write_spec, test_transforms_module):
    path = write_spec(f"""
        pipeline: pf
        modules: [{test_transforms_module}]
        steps:
          nums:
            transform: t_numbers
            outputs: {{nums: {{path: pf/nums, partition_by: [day]}}}}
          gated:
            transform: t_needs_marker
            inputs: {{df: nums}}
            params: {{marker: "ready/{{{{ date }}}}"}}
            outputs: {{out: {{path: pf/gated, partition_by: [day]}}}}
          after:
            sql: SELECT * FROM g
            inputs: {{g: gated}}
            outputs: {{after: {{path: pf/after, partition_by: [day]}}}}
        """)
    config = Config(storage=StorageConfig(root=str(tmp_path / "wh"), raw_root=str(tmp_path / "raw")),
                    base_dir=tmp_path)
    started = []

    def run(select=()):
        guard = _Marks()
        spec = load_spec(path, date=D1, config=config)
        runner = PipelineRunner(spec, config, date=D1, storage=LocalStorage(tmp_path / "wh"),
                                raw_storage=LocalStorage(tmp_path / "raw"), registry=REGISTRY,
                                spark_provider=lambda: started.append(1), guard=guard,
                                options=RunOptions(selectors=tuple(select)))
        return runner, guard

    why = f"{D1}: no ready/{D1} under local folder {tmp_path / 'raw'}"
    runner, guard = run()
    with pytest.raises(StepFailed) as info:
        runner.run()
    assert str(info.value) == f"step 'gated' (t_needs_marker) failed: {why}"
    assert guard.marks == [("gated", "failed", why)] and started == []
    assert runner.record.step("gated").status == "failed" and runner.record.step("gated").error == why
    runner, guard = run(select=("after",))  # gated only feeds the selected step: it fails the run, marks nothing
    with pytest.raises(StepFailed):
        runner.run()
    assert guard.marks == [] and started == []
    (tmp_path / "raw" / "ready" / str(D1)).mkdir(parents=True)
    runner, guard = run()
    with pytest.raises(AttributeError):  # the check passed: the runner went on to start Spark (a stub here)
        runner.run()
    assert started == [1]


class _LosesItsLock(NullGuard):
    """A guard whose lock check (the runner's last act before publishing a step's outputs) can be made to fail."""

    def __init__(self, lost: bool):
        self.lost, self.checks = lost, 0

    def assert_lock(self, what: str = "committing outputs") -> None:
        self.checks += 1
        if self.lost:
            raise LeaseLost(f"lost the lock of job pair_2024-01-04; stopping before {what}")


def test_a_lost_lock_before_the_commits_publishes_no_output_and_no_quarantine_row(env, write_spec,
                                                                                  test_transforms_module):
    """The lock is checked once, after every output of the step is staged and checked and before any commits:
    when it is lost, neither output nor the rows an expectation dropped are published."""
    run, storage, spark = env
    text = PAIR_SPEC.format(mod=test_transforms_module, limit=100).replace(
        "    expectations:\n", "    expectations:\n      - {name: not_four, output: even, expr: \"id != 4\", "
        "action: drop}\n")
    path = write_spec(text, "pair_drop.yaml")
    config = Config(storage=StorageConfig(root=str(storage.root), raw_root=str(storage.root)))

    def run_with(guard: _LosesItsLock, n: int) -> None:
        spec = load_spec(path, date=D1, var_overrides={"n": n}, config=config)
        PipelineRunner(spec, config, date=D1, storage=storage, raw_storage=storage, registry=REGISTRY,
                       spark_provider=lambda: spark, guard=guard).run()

    kept = _LosesItsLock(lost=False)
    run_with(kept, 6)
    assert kept.checks == 1  # once for the step's two outputs
    files = sorted(p.relative_to(storage.path) for p in storage.path.rglob("*.parquet"))
    assert any(p.parts[0] == "quarantine" for p in files)  # the dropped row 4 is there
    assert [r[0] for r in read(spark, storage, "pair/even")] == [0, 2]

    lost = _LosesItsLock(lost=True)
    with pytest.raises(Exception, match="lost the lock of job pair_2024-01-04"):
        run_with(lost, 10)
    assert lost.checks == 1
    assert sorted(p.relative_to(storage.path) for p in storage.path.rglob("*.parquet")) == files
    assert [r[0] for r in read(spark, storage, "pair/even")] == [0, 2]
    assert [r[0] for r in read(spark, storage, "pair/odd")] == [1, 3, 5]
    assert NullGuard().assert_lock() is None  # runs without a tracker have no lock to lose


def test_a_raw_storage_that_cannot_be_read_is_not_a_step_failure(tmp_path, write_spec, test_transforms_module):
    from engine.errors import StorageError

    class Unreachable(LocalStorage):
        def exists(self, rel_path):
            raise StorageError("Azure storage: authentication failed for account 'acme'")

    path = write_spec(f"""
        pipeline: pf
        modules: [{test_transforms_module}]
        steps:
          nums: {{transform: t_numbers, outputs: {{nums: {{path: pf/nums}}}}}}
          gated: {{transform: t_needs_marker, inputs: {{df: nums}}, params: {{marker: m}},
                   outputs: {{out: {{path: pf/gated}}}}}}
        """)
    config = Config(storage=StorageConfig(root=str(tmp_path / "wh"), raw_root=str(tmp_path / "raw")),
                    base_dir=tmp_path)
    guard = _Marks()
    runner = PipelineRunner(load_spec(path, date=D1, config=config), config, date=D1,
                            storage=LocalStorage(tmp_path / "wh"), raw_storage=Unreachable(tmp_path / "raw"),
                            registry=REGISTRY, spark_provider=lambda: pytest.fail("Spark must not start"),
                            guard=guard)
    with pytest.raises(StorageError, match="authentication failed") as info:
        runner.run()
    assert info.value.exit_code == 2 and guard.marks == []


def test_a_dataset_input_with_a_partition_folder_of_another_kind_is_refused(env, write_spec) -> None:
    """read_dataset refused such a dataset, but a `dataset:` input read it with a plain Spark read: the rows of
    `trade_dt=2024-01-05 00%3A00%3A00` came a second time, and the column turned into a string."""
    run, storage, _spark = env
    run(D2)
    nums = storage.path / "demo" / "nums"
    (nums / "day=2024-01-05 00%3A00%3A00").mkdir()
    for part in (nums / f"day={D2}").glob("*.parquet"):
        (nums / "day=2024-01-05 00%3A00%3A00" / part.name).write_bytes(part.read_bytes())
    reader = write_spec("pipeline: rd\nsteps:\n  total:\n    sql: SELECT count(*) AS n FROM nums\n"
                        "    inputs: {nums: 'dataset:demo/nums'}\n    outputs: {t: {path: rd/total}}\n")
    with pytest.raises(StepFailed, match=r"dataset 'demo/nums' holds partition folder\(s\) whose value is not a "
                                         r"date like the others: day=2024-01-05 00%3A00%3A00"):
        run(D2, n=None, spec_path=reader)
    assert not storage.exists("rd/total")


def test_a_partitioned_output_writing_no_rows_without_owning_its_partition_says_the_old_rows_stay(env, caplog):
    """The run reported 0 rows while the date kept the rows of an earlier run; the warning names the remedy."""
    run, storage, spark = env
    run(D2, n=4)
    with caplog.at_level("WARNING", logger="tickflow.runner"):
        record = run(D2, n=0)
    assert record.status == "success" and record.step("nums").rows_out == {"nums": 0}
    assert spark.read.parquet(storage.read_uri("demo/nums")).count() == 4  # what the warning is about
    warned = [r.getMessage() for r in caplog.records if "wrote no rows" in r.getMessage()]
    assert warned and warned[0].startswith("step nums: output nums wrote no rows, so no partition of 'demo/nums' "
                                           "was replaced: rows an earlier run wrote for 2024-01-05 stay; declare "
                                           "replace_partitions: {day: ...}"), warned
