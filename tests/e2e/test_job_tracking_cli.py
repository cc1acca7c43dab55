"""Job tracking through the real CLI: 20 racing `run_pipeline.py` runs, and an unmet `requires:`.

The spec's only step is a test transform (named by the spec's `modules:`) that appends its pid to a file and
then holds until the test lets it go, so the winner keeps the lock while the 19 others are refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "run_pipeline.py"
DATE = "2020-08-06"
RACERS = 20

PLUGIN = '''
import os
import time
from pathlib import Path

from engine.registry import transform

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["marker"],
          "properties": {"marker": {"type": "string"}, "hold": {"type": "string"}}}


@transform("tracking_side_effect", description="Appends the pid to a file, then holds until a file exists.",
           params_schema=SCHEMA, inputs=[])
def tracking_side_effect(ctx, inputs, params):
    with open(params["marker"], "a") as fh:
        fh.write(f"{os.getpid()}\\n")
    while params.get("hold") and not Path(params["hold"]).exists():
        time.sleep(0.05)
    return ctx.spark.range(1)
'''


@pytest.fixture
def project(tmp_path: Path) -> dict[str, Path]:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "tf_tracking_e2e.py").write_text(PLUGIN)
    marker, hold = tmp_path / "side_effect.txt", tmp_path / "hold"
    spec = tmp_path / "tinyjob.yaml"
    spec.write_text(textwrap.dedent(f"""\
        pipeline: tinyjob
        modules: [tf_tracking_e2e]
        steps:
          touch:
            transform: tracking_side_effect
            params: {{marker: "{marker}", hold: "{hold}"}}
            outputs:
              out: {{path: tiny/out, mode: overwrite}}
        """))
    downstream = tmp_path / "needs_upstream.yaml"
    downstream.write_text(textwrap.dedent(f"""\
        pipeline: tinyanalyze
        requires: [tinyjob]
        modules: [tf_tracking_e2e]
        steps:
          touch:
            transform: tracking_side_effect
            params: {{marker: "{tmp_path / 'downstream.txt'}"}}
        """))
    ini = tmp_path / "tickflow.ini"
    ini.write_text(textwrap.dedent(f"""\
        [storage]
        root = {tmp_path / 'warehouse'}
        raw_root = {tmp_path / 'raw'}
        [tracker]
        sqlite_path = {tmp_path / 'state' / 'tracker.sqlite'}
        [pipeline]
        log_dir = {tmp_path / 'logs'}
        stop_grace_seconds = 2
        [spark]
        master = local[1]
        spark.driver.memory = 1g
        spark.ui.enabled = false
        """))
    return {"tmp": tmp_path, "plugins": plugins, "spec": spec, "downstream": downstream, "ini": ini,
            "marker": marker, "hold": hold}


def running(pid: int) -> bool:
    """The process exists and has not ended (a zombie, ended but not yet reaped, has)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def env_for(project: dict[str, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join([str(project["plugins"]), str(ROOT)])
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    return env


def launch(project: dict[str, Path], spec: Path, n: int, *args: str) -> tuple[subprocess.Popen[str], Path]:
    log = project["tmp"] / f"run-{n}.txt"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, str(CLI), str(spec), "--date", DATE, "--config",
                                 str(project["ini"]), *args], cwd=project["tmp"], env=env_for(project),
                                stdout=fh, stderr=subprocess.STDOUT, text=True)
    return proc, log


@pytest.mark.slow
def test_twenty_cli_runs_race_and_exactly_one_runs(project: dict[str, Path]) -> None:
    runs = [launch(project, project["spec"], n) for n in range(RACERS)]
    deadline = time.monotonic() + 120
    while sum(p.poll() is not None for p, _ in runs) < RACERS - 1:
        assert time.monotonic() < deadline, "the refused runs did not exit in time"
        time.sleep(0.1)
    refused = [(p, log) for p, log in runs if p.poll() is not None]
    for p, log in refused:
        out = log.read_text()
        assert p.returncode == 4, out
        assert "is already running" in out and "starting Spark" not in out, out
    project["hold"].touch()  # let the winner finish
    winner, winner_log = next((p, log) for p, log in runs if p.poll() is None)
    assert winner.wait(180) == 0, winner_log.read_text()
    assert project["marker"].read_text().splitlines() == [str(winner.pid)]
    for _p, log in refused:
        assert f"pid {winner.pid}" in log.read_text()


def test_unmet_requires_exits_3_naming_the_upstream_job(project: dict[str, Path]) -> None:
    proc, log = launch(project, project["downstream"], 0)
    assert proc.wait(120) == 3, log.read_text()
    out = log.read_text()
    assert f"tinyjob_{DATE}" in out and "missing" in out and "starting Spark" not in out
    assert not (project["tmp"] / "downstream.txt").exists()


@pytest.mark.slow
def test_an_upstream_rerun_is_refused_while_a_run_reading_its_data_runs(project: dict[str, Path]) -> None:
    """`./preprocess.sh --date D --force` while analyze D runs would replace the data under it: refused with
    exit 4 before Spark starts, naming the reader, which ends as it would have."""
    from engine.tracker.sqlite_backend import SqliteTracker

    tmp = project["tmp"]
    (tmp / "state").mkdir(exist_ok=True)
    tracker = SqliteTracker(tmp / "state" / "tracker.sqlite")
    tracker.set_status(f"tinyjob_{DATE}", "success")  # the upstream job ran before
    tracker.close()
    marker, hold = tmp / "reader.txt", tmp / "reader-hold"
    reader_spec = tmp / "reader.yaml"
    reader_spec.write_text(textwrap.dedent(f"""\
        pipeline: tinyreader
        requires: [tinyjob]
        modules: [tf_tracking_e2e]
        steps:
          touch:
            transform: tracking_side_effect
            params: {{marker: "{marker}", hold: "{hold}"}}
        """))
    reader, reader_log = launch(project, reader_spec, 0)
    runs = [reader]
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():  # its step runs: it holds its lock
            assert reader.poll() is None and time.monotonic() < deadline, reader_log.read_text()
            time.sleep(0.1)
        rerun, rerun_log = launch(project, project["spec"], 1, "--force")
        runs.append(rerun)
        assert rerun.wait(60) == 4, rerun_log.read_text()
        out = rerun_log.read_text()
        assert f"job tinyjob_{DATE} is not run now: tinyreader_{DATE} (running on " in out, out
        assert f"(pid {reader.pid})" in out and "starting Spark" not in out, out
        assert not project["marker"].exists()  # the rerun's step never ran
        hold.touch()
        assert reader.wait(120) == 0, reader_log.read_text()
    finally:
        for proc in runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)


@pytest.mark.slow
def test_sigterm_ends_a_run_whose_step_runs_its_own_code(project: dict[str, Path]) -> None:
    """A step in its own Python code (here a plugin waiting for a file) cannot be cancelled like a Spark job: the
    run waited for it for ever, SIGTERM after SIGTERM. It now gives the step stop_grace_seconds, then ends
    (exit 143, the job failed, its lock released, the JVM gone), and the step commits nothing."""
    import signal

    from engine.processes import descendants
    from engine.tracker.sqlite_backend import SqliteTracker

    proc, log = launch(project, project["spec"], 0)
    try:
        deadline = time.monotonic() + 120
        while not project["marker"].exists():  # the step runs its own code
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        jvm = descendants(proc.pid)
        assert jvm, "no JVM below the run"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 143, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    out = log.read_text()
    assert "step(s) touch did not end within 2 s of the stop" in out, out
    assert not [pid for pid in jvm if running(pid)], "the JVM outlived the run"
    tracker = SqliteTracker(project["tmp"] / "state" / "tracker.sqlite")
    try:
        row, step = tracker.get(f"tinyjob_{DATE}"), tracker.get(f"tinyjob.touch_{DATE}")
    finally:
        tracker.close()
    assert row is not None and (row.status, row.lock_id, row.message) == ("failed", None, "terminated by SIGTERM")
    assert step is not None and step.status == "failed" and "its own code" in (step.message or ""), step
    assert not (project["tmp"] / "warehouse" / "tiny" / "out").exists()
