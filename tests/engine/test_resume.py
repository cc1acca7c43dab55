"""A rerun after a failure resumes: steps that succeeded for the date are not recomputed."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest

from engine.config import Config, StorageConfig, TrackerConfig
from engine.errors import StepFailed
from engine.registry import REGISTRY
from engine.runner import PipelineRunner, RunOptions
from engine.spec_loader import load_spec
from engine.storage.local import LocalStorage
from engine.tracker.base import Terminated
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


CHARTS = """
report:
  charts:
    - {title: One, source: one, x: id, y: id}
    - {title: Two, source: two.two, x: id, y: id}
    - {title: Missing column, source: two, x: id, y: nope}
"""


def spec_runner(tmp_path, spec_path, spark):
    """(run, config, storage): ``run(force=False, **vars)`` runs the spec for DATE under a job guard on a SQLite
    tracker in ``tmp_path``; ``run.runner`` is the last run's runner."""
    config = Config(storage=StorageConfig(root=str(tmp_path / "wh")),
                    tracker=TrackerConfig(sqlite_path=str(tmp_path / "t.sqlite")), base_dir=tmp_path)
    storage = LocalStorage(tmp_path / "wh")

    def run(force: bool = False, **var_overrides):
        spec = load_spec(spec_path, date=DATE, var_overrides=var_overrides, config=config)
        with open_tracker(config) as tracker:
            guard = JobGuard(tracker, spec.name, DATE, force=force, lease_seconds=30,
                             log=logging.getLogger("tickflow.test"))
            runner = run.runner = PipelineRunner(spec, config, date=DATE, storage=storage, raw_storage=storage,
                                                 registry=REGISTRY, spark_provider=lambda: spark, guard=guard,
                                                 options=RunOptions(force=force))
            return runner.run()

    return run, config, storage


@pytest.fixture(params=[""])
def setup(request, tmp_path, write_spec, test_transforms_module, spark):
    log_file = tmp_path / "computed.log"
    spec_path = write_spec(SPEC.format(mod=test_transforms_module, log=log_file) + request.param)
    run, _config, storage = spec_runner(tmp_path, spec_path, spark)
    return run, log_file, storage, spark


@pytest.mark.parametrize("setup", [CHARTS], indirect=True)
def test_a_resumed_runs_charts_read_the_outputs_of_the_steps_it_reuses(setup):
    from engine.charts import ChartError

    run, _log_file, storage, spark = setup
    with pytest.raises(StepFailed, match="step 'three'"):
        run(bad=True)
    spark.range(3).selectExpr("id", f"DATE'{DATE + dt.timedelta(1)}' AS day").write.mode("append") \
        .partitionBy("day").parquet(storage.read_uri("r/one"))  # another date's rows must not show
    record = run(bad=False)
    assert [record.step(s).status for s in ("one", "two", "three")] == ["skipped", "skipped", "success"]
    frames = {spec.title: frame for spec, frame in run.runner.chart_frames.items()}
    assert sorted(frames["One"]["id"]) == list(range(6))  # skipped: read back, this date's partition only
    assert sorted(frames["Two"]["id"]) == [10 * i for i in range(6)]  # reloaded for step three
    assert isinstance(frames["Missing column"], ChartError) and "nope" in str(frames["Missing column"])


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


REDEFINED = SPEC.replace("vars: {{bad: true}}", "vars: {{bad: true, mult: 10}}").replace(
    "SELECT id * 10 AS id", "SELECT id * {{{{ vars.mult }}}} AS id")


@pytest.mark.parametrize("change", ["sql", "code"])
def test_a_step_edited_after_a_failed_run_is_computed_again_not_reused(change, tmp_path, write_spec,
                                                                       test_transforms_module, spark, monkeypatch):
    """Run, a later step fails, fix it and edit an earlier step: the edited step (and what reads it) is
    recomputed, the untouched one reused. Before, the edited step was skipped as done and the job ended
    success with outputs the spec no longer described."""
    import engine.step_reuse

    log_file = tmp_path / "computed.log"
    spec_path = write_spec(REDEFINED.format(mod=test_transforms_module, log=log_file))
    run, _config, storage = spec_runner(tmp_path, spec_path, spark)
    with pytest.raises(StepFailed, match="step 'three'"):
        run(bad=True)
    if change == "sql":
        record = run(bad=False, mult=100)
        expected, statuses = 100, ["skipped", "success", "success"]
    else:  # the transform's source file changed (a new release of the plugin): its step and all downstream
        real = engine.step_reuse.code_digest
        monkeypatch.setattr(engine.step_reuse, "code_digest", lambda func: real(func) + "-edited")
        record = run(bad=False)
        expected, statuses = 10, ["success", "success", "success"]
    assert record.status == "success"
    assert [record.step(s).status for s in ("one", "two", "three")] == statuses
    assert log_file.read_text().splitlines() == ["one"] * (1 + (change == "code"))
    total = spark.read.parquet(storage.read_uri("r/three")).collect()
    assert [r["total"] for r in total] == [expected * sum(range(6))]
    assert sorted(r["id"] for r in spark.read.parquet(storage.read_uri("r/two")).collect()) == [
        expected * i for i in range(6)]


def test_a_step_whose_written_partition_was_deleted_is_computed_again(setup):
    """The tracker says 'success', the dataset folder exists, but the date's partition the step wrote was
    deleted by hand: reusing (or reloading) it would leave the date short or fail on a missing path."""
    import shutil

    run, log_file, storage, spark = setup
    with pytest.raises(StepFailed, match="step 'three'"):
        run(bad=True)
    shutil.rmtree(storage.path / "r" / "two" / f"day={DATE}")
    assert storage.exists("r/two")
    record = run(bad=False)
    assert record.status == "success"
    assert [record.step(s).status for s in ("one", "two", "three")] == ["skipped", "success", "success"]
    assert storage.exists(f"r/two/day={DATE}")
    total = spark.read.parquet(storage.read_uri("r/three")).collect()
    assert [r["total"] for r in total] == [10 * sum(range(6))]


# -- a rerun recomputes every step downstream of a step it recomputes ---------------------------------------
PROBE_MODULE = '''
import signal
import sqlite3

from engine.errors import TransformError
from engine.registry import transform
from engine.tracker.base import Terminated


@transform("t_probe", description="Passes `df` through after noting the tracker status of job `job`; "
           "`stop: fail` fails, `stop: terminate` acts as SIGTERM arriving.", inputs=["df"],
           params_schema={"type": "object", "required": ["tracker", "job", "record"],
                          "properties": {"tracker": {"type": "string"}, "job": {"type": "string"},
                                         "record": {"type": "string"}, "stop": {"type": "string", "default": ""}}})
def t_probe(ctx, inputs, params):
    with sqlite3.connect(params["tracker"]) as db:
        row = db.execute("SELECT status FROM job_tracker WHERE job_id = ?", (params["job"],)).fetchone()
    with open(params["record"], "a") as fh:
        fh.write((row[0] if row else "none") + "\\n")
    if params["stop"] == "fail":
        raise TransformError("max_bad_share exceeded")
    if params["stop"] == "terminate":
        raise Terminated(signal.SIGTERM)
    return inputs["df"]
'''

CHAIN = """
pipeline: chain
modules: [{mod}, {probe}]
vars: {{n: 6, stop: ""}}
steps:
  src:
    transform: t_counted
    params: {{log: "{log}", n: "{{{{ vars.n }}}}"}}
  ingest:
    transform: t_probe
    inputs: {{df: src}}
    params: {{tracker: "{tracker}", job: chain.eod_2024-01-05, record: "{seen}", stop: "{{{{ vars.stop }}}}"}}
    outputs: {{ingest: {{path: c/ingest, partition_by: [day]}}}}
  scaled:
    sql: SELECT id * 10 AS id, day FROM ingest
    inputs: {{ingest: ingest}}
  eod:
    sql: SELECT day, count(*) AS n, sum(id) AS total FROM scaled GROUP BY day
    inputs: {{scaled: scaled}}
    outputs: {{eod: {{path: c/eod, partition_by: [day]}}}}
"""


@pytest.fixture(scope="session")
def probe_module(install_module) -> str:
    return install_module("tf_resume_probe", PROBE_MODULE)


@pytest.fixture
def chain(tmp_path, write_spec, test_transforms_module, probe_module, spark):
    """ingest -> scaled (no outputs) -> eod; ``run`` returns the record, ``eod()`` the rows eod committed."""
    files = {"log": tmp_path / "computed.log", "seen": tmp_path / "eod_status_seen_by_ingest.log",
             "tracker": tmp_path / "t.sqlite"}
    spec_path = write_spec(CHAIN.format(mod=test_transforms_module, probe=probe_module, **files))
    config = Config(storage=StorageConfig(root=str(tmp_path / "wh")),
                    tracker=TrackerConfig(sqlite_path=str(files["tracker"])), base_dir=tmp_path)
    storage = LocalStorage(tmp_path / "wh")

    def run(n: int, stop: str = "", force: bool = False, select: tuple[str, ...] = ()):
        spec = load_spec(spec_path, date=DATE, var_overrides={"n": n, "stop": stop}, config=config)
        with open_tracker(config) as tracker:
            guard = JobGuard(tracker, spec.name, DATE, force=force, lease_seconds=30,
                             log=logging.getLogger("tickflow.test"))
            runner = PipelineRunner(spec, config, date=DATE, storage=storage, raw_storage=storage,
                                    registry=REGISTRY, spark_provider=lambda: spark, guard=guard,
                                    options=RunOptions(force=force, selectors=select))
            return runner.run()

    def row(job: str) -> tuple[str | None, str | None]:
        with open_tracker(config) as tracker:
            found = tracker.get(job)
        return (found.status, found.message) if found is not None else (None, None)

    def eod() -> list[tuple[int, int]]:
        return [(r["n"], r["total"]) for r in spark.read.parquet(storage.read_uri("c/eod")).collect()]

    def lines(name: str) -> list[str]:
        return files[name].read_text().splitlines() if files[name].exists() else []

    return run, row, eod, lines


def test_rerun_after_a_failed_forced_run_recomputes_the_steps_downstream_of_the_failed_step(chain):
    run, row, eod, lines = chain
    assert run(n=6).status == "success"
    assert eod() == [(6, 10 * sum(range(6)))]

    with pytest.raises(StepFailed, match="max_bad_share exceeded"):  # new raw data for the date, rejected
        run(n=4, stop="fail", force=True)
    assert lines("seen") == ["none", "stale"]  # eod was no longer 'success' while ingest was recomputed
    status, message = row("chain.eod_2024-01-05")
    assert status == "stale" and "being recomputed (--force)" in message  # marked before the first step ran

    record = run(n=4)  # the data fixed: ingest reruns, so eod (behind the output-less step scaled) reruns too
    assert [record.step(s).status for s in ("src", "ingest", "scaled", "eod")] == ["success"] * 4
    assert eod() == [(4, 10 * sum(range(4)))]
    assert row("chain_2024-01-05")[0] == row("chain.eod_2024-01-05")[0] == "success"


FORCED = """
pipeline: forced
modules: [{mod}]
vars: {{fail: false}}
steps:
  src:
    transform: t_counted
    params: {{log: "{log}"}}
  gate:
    sql: "SELECT * FROM src{{% if vars.fail %}} WHERE no_such_column > 0{{% endif %}}"
    inputs: {{src: src}}
  out:
    sql: SELECT id, day FROM gate
    inputs: {{gate: gate}}
    outputs: {{out: {{path: f/out, partition_by: [day]}}}}
"""


def test_a_plain_run_after_a_forced_run_failed_before_reaching_a_step_recomputes_it(tmp_path, write_spec,
                                                                                     test_transforms_module, spark):
    """The forced run fails in a step without outputs (as a read of damaged input does), before the step that
    writes: that step's earlier success must not let the next plain run skip it."""
    spec_path = write_spec(FORCED.format(mod=test_transforms_module, log=tmp_path / "computed.log"))
    run, config, _storage = spec_runner(tmp_path, spec_path, spark)
    assert run(fail=False).status == "success"
    with pytest.raises(StepFailed, match="step 'gate'"):
        run(fail=True, force=True)
    with open_tracker(config) as tracker:
        row = tracker.get("forced.out_2024-01-05")
    assert row is not None and row.status == "stale" and "--force" in (row.message or "")
    record = run(fail=False)
    assert record.status == "success" and record.step("out").status == "success"  # recomputed, not skipped


def test_a_run_stopped_while_a_step_runs_leaves_the_steps_downstream_of_it_stale(chain):
    run, row, eod, lines = chain
    run(n=6)
    with pytest.raises(Terminated):  # SIGTERM while ingest recomputes: a kill now leaves eod stale already
        run(n=4, stop="terminate", force=True)
    assert lines("seen") == ["none", "stale"]
    assert row("chain.eod_2024-01-05")[0] == "stale"

    record = run(n=4, select=("eod",))  # only eod: it is stale, so it is recomputed (ingest feeds it)
    assert record.step("eod").status == "success" and record.step("ingest").rows_out == {}
    assert eod() == [(4, 10 * sum(range(4)))]
    assert row("chain.ingest_2024-01-05")[0] == "failed"  # a feeder's row tells about its committed outputs
    status, message = row("chain_2024-01-05")  # ingest's outputs are still those of n=6: the job is not done
    assert status == "stale" and "ingest (failed)" in message


def test_a_forced_selected_step_leaves_the_rows_of_its_feeders_alone(chain):
    """--force --select eod recomputes eod; ingest only feeds it (writes nothing), so its row stays 'success'."""
    run, row, eod, lines = chain
    assert run(n=6).status == "success"
    record = run(n=6, select=("eod",), force=True)
    assert record.step("eod").status == "success" and record.step("ingest").rows_out == {}
    assert row("chain.ingest_2024-01-05")[0] == row("chain.eod_2024-01-05")[0] == "success"


def test_a_selected_upstream_step_leaves_its_unselected_downstream_steps_and_the_job_stale(chain):
    run, row, eod, lines = chain
    run(n=6)
    record = run(n=4, select=("ingest",), force=True)
    assert record.status == "stale" and record.step("eod").status == "skipped"
    assert PipelineRunner.summary(record).startswith("chain 2024-01-05: stale in ")
    assert row("chain.eod_2024-01-05")[0] == "stale"
    assert row("chain.scaled_2024-01-05")[0] == "success"  # no outputs: never reused, so never marked stale
    status, message = row("chain_2024-01-05")
    assert status == "stale" and "eod (stale)" in message and "scaled" not in message
    assert eod() == [(6, 10 * sum(range(6)))]  # not recomputed yet

    record = run(n=4)  # a plain run is not refused as done: ingest is reused, eod recomputed
    assert [record.step(s).status for s in ("src", "ingest", "scaled", "eod")] == [
        "skipped", "skipped", "success", "success"]
    assert lines("log") == ["src", "src"]  # ingest's committed output fed the rerun
    assert eod() == [(4, 10 * sum(range(4)))]
    assert row("chain_2024-01-05")[0] == "success"


# -- a run whose lock was taken away commits nothing ------------------------------------------------------------
GRAB_MODULE = '''
import sqlite3
import uuid

from engine.registry import transform


@transform("t_grab", description="Passes `df` through after taking job `job`'s lock away in the tracker file: "
           "`grab: takeover` as a run taking over an expired lease does, `grab: unlock` as an operator does.",
           inputs=["df"],
           params_schema={"type": "object", "required": ["tracker", "job"],
                          "properties": {"tracker": {"type": "string"}, "job": {"type": "string"},
                                         "grab": {"type": "string", "default": ""}}})
def t_grab(ctx, inputs, params):
    # runs on the driver between the step's compute and its commit (the DataFrame is written afterwards)
    with sqlite3.connect(params["tracker"], isolation_level=None) as db:
        if params["grab"] == "takeover":
            db.execute("UPDATE job_tracker SET lock_id = ?, holder_host = 'other-node', holder_pid = 4711 "
                       "WHERE job_id = ?", (str(uuid.uuid4()), params["job"]))
        elif params["grab"] == "unlock":
            db.execute("UPDATE job_tracker SET lock_id = NULL, lease_expires = NULL, status = 'failed', "
                       "message = 'unlocked by ops@box' WHERE job_id = ?", (params["job"],))
    return inputs["df"]
'''

GRAB = """
pipeline: grab
modules: [{mod}, {grab}]
vars: {{n: 6, grab: ""}}
steps:
  src:
    transform: t_counted
    params: {{log: "{log}", n: "{{{{ vars.n }}}}"}}
  out:
    transform: t_grab
    inputs: {{df: src}}
    params: {{tracker: "{tracker}", job: grab_2024-01-05, grab: "{{{{ vars.grab }}}}"}}
    outputs: {{out: {{path: g/out, partition_by: [day]}}}}
    expectations:
      - {{name: odd, expr: "id % 2 = 0", action: drop}}
"""


@pytest.fixture(scope="session")
def grab_module(install_module) -> str:
    return install_module("tf_resume_grab", GRAB_MODULE)


@pytest.mark.parametrize("grab", ["takeover", "unlock"])
def test_a_run_whose_lock_is_taken_away_before_its_commit_commits_nothing(grab, tmp_path, write_spec,
                                                                          test_transforms_module, grab_module,
                                                                          spark):
    from engine.tracker.base import LeaseLost

    tracker_file = tmp_path / "t.sqlite"
    spec_path = write_spec(GRAB.format(mod=test_transforms_module, grab=grab_module, log=tmp_path / "computed.log",
                                       tracker=tracker_file))
    config = Config(storage=StorageConfig(root=str(tmp_path / "wh")),
                    tracker=TrackerConfig(sqlite_path=str(tracker_file)), base_dir=tmp_path)
    storage = LocalStorage(tmp_path / "wh")

    def run(n: int, grab: str = "", force: bool = False):
        spec = load_spec(spec_path, date=DATE, var_overrides={"n": n, "grab": grab}, config=config)
        with open_tracker(config) as tracker:  # a long lease: the heartbeat does not notice in time
            guard = JobGuard(tracker, spec.name, DATE, force=force, lease_seconds=60,
                             log=logging.getLogger("tickflow.test"))
            return PipelineRunner(spec, config, date=DATE, storage=storage, raw_storage=storage,
                                  registry=REGISTRY, spark_provider=lambda: spark, guard=guard,
                                  options=RunOptions(force=force)).run()

    def committed() -> tuple[list[int], list[int]]:
        out = sorted(r["id"] for r in spark.read.parquet(storage.read_uri("g/out")).collect())
        dropped = sorted(json.loads(r["raw_line"])["id"]
                         for r in spark.read.parquet(storage.read_uri("quarantine")).collect())
        return out, dropped

    assert run(n=6).status == "success"
    assert committed() == ([0, 2, 4], [1, 3, 5])
    files = sorted(p.relative_to(storage.path) for p in storage.path.rglob("*.parquet"))

    with pytest.raises(LeaseLost, match="grab_2024-01-05") as info:
        run(n=4, grab=grab, force=True)  # other rows: a commit would show in the output and in quarantine
    assert committed() == ([0, 2, 4], [1, 3, 5])  # was: ([0, 2], [1, 3]), next to the new holder's outputs
    assert sorted(p.relative_to(storage.path) for p in storage.path.rglob("*.parquet")) == files
    chain, exc = [], info.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert any("stopping before committing outputs" in text for text in chain), chain
    with open_tracker(config) as tracker:
        job, step = tracker.get("grab_2024-01-05"), tracker.get("grab.out_2024-01-05")
    assert job is not None and step is not None
    if grab == "takeover":  # the new holder's row is left as it is
        assert (job.status, job.holder_host) == ("running", "other-node") and job.lock_id is not None
    else:
        assert (job.status, job.lock_id, job.message) == ("failed", None, "unlocked by ops@box")
    assert step.status != "success"


UP = f"up_{DATE}"


@pytest.fixture
def with_upstream(tmp_path, write_spec, test_transforms_module, spark):
    """(run(bad=False), tracker, log of step one's computations) for the spec requiring job ``up``, which has
    succeeded."""
    log_file = tmp_path / "computed.log"
    spec_path = write_spec(SPEC.format(mod=test_transforms_module, log=log_file).replace(
        "pipeline: resume\n", "pipeline: resume\nrequires: [up]\n"))
    config = Config(storage=StorageConfig(root=str(tmp_path / "wh")),
                    tracker=TrackerConfig(sqlite_path=str(tmp_path / "t.sqlite")), base_dir=tmp_path)
    storage = LocalStorage(tmp_path / "wh")
    tracker = open_tracker(config)

    def run(bad: bool = False):
        spec = load_spec(spec_path, date=DATE, var_overrides={"bad": bad}, config=config)
        guard = JobGuard(tracker, spec.name, DATE, spec.requires, lease_seconds=30)
        return PipelineRunner(spec, config, date=DATE, storage=storage, raw_storage=storage, registry=REGISTRY,
                              spark_provider=lambda: spark, guard=guard).run()

    tracker.set_status(UP, "success")
    try:
        yield run, tracker, log_file
    finally:
        tracker.close()


def _succeed_after(tracker, job: str) -> None:
    """The upstream job succeeds again, at a database time later than ``job``'s row."""
    while tracker.get(UP).updated_time <= tracker.get(job).updated_time:
        tracker.set_status(UP, "success")


def test_a_job_whose_upstream_succeeded_again_recomputes_every_step(with_upstream):
    run, tracker, log_file = with_upstream
    assert run().status == "success" and run().status == "skipped"
    assert log_file.read_text().splitlines() == ["one"]
    _succeed_after(tracker, f"resume_{DATE}")  # the upstream reran later
    record = run()
    assert [record.step(s).status for s in ("one", "two", "three")] == ["success"] * 3  # no step reused
    assert log_file.read_text().splitlines() == ["one", "one"]
    assert run().status == "skipped"


def test_a_failed_job_does_not_reuse_steps_computed_before_its_upstream_succeeded_again(with_upstream):
    """The job row is 'failed', so the job is not 'outdated'; its steps' rows are older than the upstream's."""
    run, tracker, log_file = with_upstream
    with pytest.raises(StepFailed, match="step 'three'"):
        run(bad=True)
    assert tracker.get(f"resume.two_{DATE}").status == "success"
    _succeed_after(tracker, f"resume.two_{DATE}")  # the upstream reran after steps one and two
    record = run()
    assert [record.step(s).status for s in ("one", "two", "three")] == ["success"] * 3  # nothing reused
    assert log_file.read_text().splitlines() == ["one", "one"]


RAW_SPEC = """
pipeline: late
modules: [{mod}]
steps:
  lines:
    transform: t_raw_lines
    params: {{folder: "in/{{{{ date }}}}", log: "{log}"}}
    outputs: {{lines: {{path: r/lines, partition_by: [day]}}}}
  counted:
    sql: SELECT day, count(*) AS n FROM lines GROUP BY day
    inputs: {{lines: lines}}
    outputs: {{counted: {{path: r/counted, partition_by: [day]}}}}
  other:
    transform: t_counted
    params: {{log: "{log}"}}
    outputs: {{other: {{path: r/other, partition_by: [day]}}}}
"""


def test_a_late_raw_file_reruns_the_step_that_read_the_folder_and_its_downstream_only(
        tmp_path, write_spec, test_transforms_module, spark):
    """The job succeeded; then a file lands in the raw folder its first step read. The job is no longer done:
    that step and the step reading it are recomputed (with the late lines), the unrelated step is reused, and a
    run after that has nothing to do."""
    from engine.outputs_present import incomplete_job

    log_file = tmp_path / "computed.log"
    spec_path = write_spec(RAW_SPEC.format(mod=test_transforms_module, log=log_file))
    raw, storage = LocalStorage(tmp_path / "raw"), LocalStorage(tmp_path / "wh")
    (tmp_path / "raw/in" / str(DATE)).mkdir(parents=True)
    (tmp_path / "raw/in" / str(DATE) / "part-0.txt").write_text("a\nb\n")
    config = Config(storage=StorageConfig(root=str(tmp_path / "wh")),
                    tracker=TrackerConfig(sqlite_path=str(tmp_path / "t.sqlite")), base_dir=tmp_path)

    def run() -> tuple[str | None, object]:
        spec = load_spec(spec_path, date=DATE, config=config)
        with open_tracker(config) as tracker:
            why = incomplete_job(spec, DATE, tracker, storage, raw)
            guard = JobGuard(tracker, spec.name, DATE, lease_seconds=30, log=logging.getLogger("tickflow.test"),
                             incomplete=why)
            return why, PipelineRunner(spec, config, date=DATE, storage=storage, raw_storage=raw,
                                       registry=REGISTRY, spark_provider=lambda: spark, guard=guard).run()

    def counted() -> int:
        return spark.read.parquet(str(tmp_path / "wh/r/counted")).collect()[0]["n"]

    assert run()[0] is None and counted() == 2
    assert sorted(log_file.read_text().split()) == ["lines", "other"]
    why, record = run()
    assert why is None and record.status == "skipped"
    (tmp_path / "raw/in" / str(DATE) / "part-1.txt").write_text("late\n")
    why, record = run()
    assert why == f"its raw input changed since it ran: in/{DATE} (2 files, 0.0 MB; was 1 file, 0.0 MB)"
    assert record.status == "success" and counted() == 3
    assert {s.name: s.status for s in record.steps} == {"lines": "success", "counted": "success",
                                                       "other": "skipped"}
    assert sorted(log_file.read_text().split()) == ["lines", "lines", "other"]
    why, record = run()
    assert why is None and record.status == "skipped"
