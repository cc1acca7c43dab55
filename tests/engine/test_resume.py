"""A rerun after a failure resumes: steps that succeeded for the date are not recomputed."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from engine.config import Config, StorageConfig, TrackerConfig
from engine.errors import StepFailed
from engine.registry import REGISTRY
from engine.runner import PipelineRunner, RunOptions
from engine.spec_loader import load_spec
from engine.storage.local import LocalStorage
from engine.tracker.factory import open_tracker
from engine.tracker.guard import JobGuard

DATE = dt.date(2024, 1, 5)
SPEC = """
pipeline: resume
modules: [{mod}]
vars: {{bad: true}}
steps:
  one:
    transform: t_counted
    params: {{log: "{log}"}}
    outputs: {{one: {{path: r/one, partition_by: [day]}}}}
  two:
    sql: SELECT id * 10 AS id, day FROM one
    inputs: {{one: one}}
    outputs: {{two: {{path: r/two, partition_by: [day]}}}}
  three:
    sql: "SELECT day, sum(id) AS total{{% if vars.bad %}}, no_such_column{{% endif %}} FROM two GROUP BY day"
    inputs: {{two: two}}
    outputs: {{three: {{path: r/three, partition_by: [day]}}}}
"""


@pytest.fixture
def setup(tmp_path, write_spec, test_transforms_module, spark):
    log_file = tmp_path / "computed.log"
    spec_path = write_spec(SPEC.format(mod=test_transforms_module, log=log_file))
    config = Config(storage=StorageConfig(root=str(tmp_path / "wh")),
                    tracker=TrackerConfig(sqlite_path=str(tmp_path / "t.sqlite")), base_dir=tmp_path)
    storage = LocalStorage(tmp_path / "wh")

    def run(bad: bool, force: bool = False):
        spec = load_spec(spec_path, date=DATE, var_overrides={"bad": bad}, config=config)
        tracker = open_tracker(config)
        guard = JobGuard(tracker, spec.name, DATE, force=force, lease_seconds=30,
                         log=logging.getLogger("tickflow.test"))
        runner = PipelineRunner(spec, config, date=DATE, storage=storage, raw_storage=storage, registry=REGISTRY,
                                spark_provider=lambda: spark, guard=guard, options=RunOptions(force=force))
        try:
            return runner.run()
        finally:
            tracker.close()

    return run, log_file, storage, spark


def test_rerun_after_failure_resumes_after_last_successful_step(setup):
    run, log_file, storage, spark = setup
    with pytest.raises(StepFailed, match="step 'three'"):
        run(bad=True)
    assert log_file.read_text().splitlines() == ["one"]
    assert storage.exists("r/one") and storage.exists("r/two") and not storage.exists("r/three")

    record = run(bad=False)  # fixed
    assert record.status == "success"
    assert [record.step(s).status for s in ("one", "two", "three")] == ["skipped", "skipped", "success"]
    assert log_file.read_text().splitlines() == ["one"]  # step one was not computed again
    total = spark.read.parquet(storage.read_uri("r/three")).collect()
    assert [r["total"] for r in total] == [10 * sum(range(6))]  # step three read step two's committed output

    record = run(bad=False)  # the job is at success: nothing runs
    assert record.status == "skipped"
    record = run(bad=False, force=True)
    assert [record.step(s).status for s in ("one", "two", "three")] == ["success"] * 3
    assert log_file.read_text().splitlines() == ["one", "one"]
