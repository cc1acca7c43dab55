"""`plan` shows what validation cannot know: a dataset: input that is not in storage (read-only, no Spark)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from engine.config import Config, StorageConfig, TrackerConfig
from engine.plan import describe_plan
from engine.spec_loader import load_spec

DATE = dt.date(2024, 1, 5)

SPEC = """
pipeline: demo
steps:
  writer:
    sql: SELECT 1 AS x
    outputs: {o: {path: mine}}
  reader:
    sql: SELECT * FROM t JOIN u
    inputs: {t: "dataset:elsewhere/made", u: "dataset:mine"}
    outputs: {o: {path: out/r}}
"""


@pytest.fixture()
def config(tmp_path: Path) -> Config:
    return Config(storage=StorageConfig(root=str(tmp_path / "wh"), raw_root=str(tmp_path / "raw")),
                  tracker=TrackerConfig(sqlite_path=str(tmp_path / "t.sqlite")))


def notes(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("note")]


def test_a_missing_dataset_input_is_shown_under_its_step(write_spec, config, tmp_path):
    spec = load_spec(write_spec(SPEC), date=DATE)  # validation accepts it: another pipeline may write it later
    text = describe_plan(spec, config, DATE)
    assert notes(text) == ["note   input t: dataset:elsewhere/made does not exist (yet) under the storage root; "
                           "a run now would fail at this step"]  # dataset:mine is written first by this run
    lines = text.splitlines()
    assert lines[lines.index("       input  t <- dataset:elsewhere/made") + 1].strip() == notes(text)[0]
    assert not (tmp_path / "wh").exists()  # plan only looks


def test_an_existing_dataset_input_has_no_note(write_spec, config, tmp_path):
    (tmp_path / "wh" / "elsewhere" / "made").mkdir(parents=True)
    text = describe_plan(load_spec(write_spec(SPEC), date=DATE), config, DATE)
    assert notes(text) == []


def test_a_dataset_whose_writer_does_not_write_in_this_run_is_shown(write_spec, config, tmp_path):
    (tmp_path / "wh" / "elsewhere" / "made").mkdir(parents=True)
    text = describe_plan(load_spec(write_spec(SPEC), date=DATE), config, DATE, selectors=("reader",))
    assert notes(text) == ["note   input u: dataset:mine does not exist (yet) under the storage root (written by "
                           "step writer, which does not write in this run); a run now would fail at this step"]


def test_a_step_whose_preflight_refuses_is_shown_with_the_verdict(write_spec, config, tmp_path,
                                                                   test_transforms_module):
    text = f"""
        pipeline: pf
        modules: [{test_transforms_module}]
        steps:
          nums: {{transform: t_numbers, outputs: {{nums: {{path: pf/nums}}}}}}
          gated:
            transform: t_needs_marker
            inputs: {{df: nums}}
            params: {{marker: "ready/{{{{ date }}}}"}}
            outputs: {{out: {{path: pf/gated}}}}
        """
    spec = load_spec(write_spec(text), date=DATE)
    why = f"{DATE}: no ready/{DATE} under local folder {tmp_path / 'raw'}"
    plan = describe_plan(spec, config, DATE)
    assert f"verdict:  a run would exit 1 before Spark starts: step gated: {why}" in plan.splitlines()
    assert notes(plan) == [f"note   would fail before Spark starts: {why}"]
    assert "not selected" in describe_plan(spec, config, DATE, selectors=("nums",))
    assert notes(describe_plan(spec, config, DATE, selectors=("nums",))) == []  # a step that does not run
    (tmp_path / "raw" / "ready" / str(DATE)).mkdir(parents=True)
    plan = describe_plan(spec, config, DATE)
    assert notes(plan) == [] and "verdict:  a run would compute 2 of 2 steps" in plan.splitlines()


def states(text: str) -> dict[str, str]:
    """Step name -> what the plan says a run does with it."""
    out = {}
    for line in text.splitlines():
        head, sep, state = line.strip().partition(" -> ")
        if sep and head[:1].isdigit() and "[" in head:
            out[head.split(" ")[1]] = state
    return out


METRICS = """
pipeline: demo2
steps:
  base: {sql: "SELECT 1 AS x"}
  old_metric: {sql: "SELECT x FROM base", outputs: {o: {path: demo2/old}}}
  new_metric: {sql: "SELECT x + 1 AS y FROM base", outputs: {o: {path: demo2/new}}}
"""


def test_the_steps_of_a_job_that_already_succeeded_follow_the_verdict(write_spec, config):
    """The verdict said the run would do nothing while every step was listed as `run`: "will my new step run?"
    had two answers. With --force and --select, only the selected step is written (its input computed again
    in memory)."""
    from engine.tracker.factory import open_tracker

    spec = load_spec(write_spec(METRICS), date=DATE)
    tracker = open_tracker(config)
    tracker.set_status(f"demo2_{DATE}", "success")
    tracker.close()
    text = describe_plan(spec, config, DATE)
    assert "verdict:  a run would do nothing: the job already succeeded (use --force)" in text.splitlines()
    assert states(text) == dict.fromkeys(("base", "old_metric", "new_metric"),
                                         "skip (job already succeeded; --force recomputes)")
    text = describe_plan(spec, config, DATE, selectors=("new_metric",), force=True)
    assert states(text) == {"base": "run as feeder (outputs not written)", "old_metric": "not selected",
                            "new_metric": "run"}
    assert states(describe_plan(spec, config, DATE, force=True)) == dict.fromkeys(("base", "old_metric",
                                                                                    "new_metric"), "run")


def test_a_read_dataset_path_that_nothing_provides_is_a_plan_note_with_the_spec_line(write_spec, config, tmp_path):
    """Only a run, after Spark's start, refused it; a path an earlier step of the run writes is not refused."""
    (tmp_path / "wh" / "trade").mkdir(parents=True)
    path = write_spec("""
        pipeline: rd
        steps:
          made:
            sql: SELECT 1 AS x
            outputs: {o: {path: rd/made}}
          again:
            transform: read_dataset
            params: {path: rd/made}
            depends_on: [made]
          trades:
            transform: read_dataset
            params:
              path: trades
        """)
    plan = describe_plan(load_spec(path, date=DATE), config, DATE)
    why = (f"{path}:13: steps.trades.params.path: dataset 'trades' does not exist under the storage root (local "
           f"folder {tmp_path / 'wh'}) and no step of this pipeline writes it (did you mean 'trade'?)")
    assert notes(plan) == [f"note   would fail before Spark starts: {why}"]
    assert f"verdict:  a run would exit 1 before Spark starts: step trades: {why}" in plan.splitlines()


def test_plan_shows_the_refusals_of_runs_that_would_overlap_a_reader(write_spec, config):
    """As the run's admission decides: a job whose data a live run reads would exit 4, and a run reading a
    job that is being run would exit 3."""
    from engine.tracker.factory import open_tracker
    from engine.tracker.readers import Reads

    upstream = load_spec(write_spec("pipeline: up\nsteps:\n  a: {sql: SELECT 1 AS x, outputs: {o: {path: up}}}\n"),
                         date=DATE)
    reader = load_spec(write_spec("pipeline: rd\nrequires: [up]\nreads_earlier_dates: true\nsteps:\n"
                                  "  b: {sql: SELECT 1 AS x, outputs: {o: {path: rd}}}\n"), date=DATE)
    earlier = DATE - dt.timedelta(days=1)
    tracker = open_tracker(config)
    for day in (earlier, DATE):
        tracker.set_status(f"up_{day}", "success")
    assert tracker.acquire(f"rd_{DATE}", lease_seconds=600, holder_host="host-b", holder_pid=7,
                           reads=Reads(("up",), DATE, earlier=True).text()) is not None
    assert f"verdict:  a run would exit 4: rd_{DATE} (running on host-b (pid 7) since " in describe_plan(
        upstream, config, earlier)
    later = DATE + dt.timedelta(days=1)
    tracker.set_status(f"up_{later}", "success")
    assert tracker.acquire(f"up_{DATE}", lease_seconds=600, holder_host="host-b", holder_pid=8,
                           force=True) is not None
    text = describe_plan(reader, config, later)
    assert f"verdict:  a run would exit 3: upstream job up_{DATE} (running on host-b (pid 8) since " in text
    tracker.close()
