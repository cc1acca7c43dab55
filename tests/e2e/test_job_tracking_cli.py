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
        [spark]
        master = local[1]
        spark.driver.memory = 1g
        spark.ui.enabled = false
        """))
    return {"tmp": tmp_path, "plugins": plugins, "spec": spec, "downstream": downstream, "ini": ini,
            "marker": marker, "hold": hold}


def env_for(project: dict[str, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join([str(project["plugins"]), str(ROOT)])
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    return env


def launch(project: dict[str, Path], spec: Path, n: int) -> tuple[subprocess.Popen[str], Path]:
    log = project["tmp"] / f"run-{n}.txt"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, str(CLI), str(spec), "--date", DATE, "--config",
                                 str(project["ini"])], cwd=project["tmp"], env=env_for(project),
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
