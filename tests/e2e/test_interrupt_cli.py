"""SIGTERM (or SIGINT) in the middle of two steps running at once, through the real CLI.

Both steps write an endless range, so neither can end by itself: the run ends only if the interrupt cancels
both Spark jobs. Then nothing may be committed, no staging folder may stay, the downstream step must not
start and the job must be recorded as failed.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.e2e.test_job_tracking_cli import env_for
from tests.engine.tracker.test_contract import wait_until

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "run_pipeline.py"
DATE = "2020-08-06"
NEXT = "2020-08-07"  # the next trading day

PLUGIN = '''
from pathlib import Path

from engine.registry import transform

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["marker"],
          "properties": {"marker": {"type": "string"}}}


@transform("endless_rows", description="Touches a file, then returns rows without end.", params_schema=SCHEMA,
           inputs=[])
def endless_rows(ctx, inputs, params):
    Path(params["marker"]).touch()
    return ctx.spark.range(0, 10**15, 1, 2).selectExpr("id", "sha2(cast(id AS string), 256) AS h")


@transform("endless_touching", description="Rows without end; the first row processed touches a file.",
           params_schema=SCHEMA, inputs=[])
def endless_touching(ctx, inputs, params):
    from pyspark.sql import functions as F

    marker = params["marker"]

    @F.udf("long")
    def touch(i):
        Path(marker).touch()
        return i

    return ctx.spark.range(0, 10**15, 1, 2).select(touch("id").alias("id"))


@transform("after", description="Touches a file.", params_schema=SCHEMA, inputs=["rows"])
def after(ctx, inputs, params):
    Path(params["marker"]).touch()
    return inputs["rows"].limit(1)
'''


def _write_set_up(staging: Path, step: str) -> bool:
    """``step``'s Spark write is under way: Hadoop's committer made ``<output>/_temporary/<job attempt>`` in the
    output's staging folder when Spark's writer set up the job, right before submitting it.

    Its tasks' own folders (``.../_temporary/attempt_*``) say nothing reliable: ``left`` is read twice (by its
    write and by ``down``), so its rows are cached first, and caching rows without end never hands any to the
    writer; and local[2] has two cores for the four endless tasks of two writes, so the second job may wait."""
    try:
        return any(staging.glob(f"**/two/{step}/_temporary/*"))
    except OSError:  # Spark creates and removes folders in there
        return False


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the driver JVM of a run)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2:].split()[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2] != "Z"  # a zombie has ended


@pytest.mark.parametrize(("sig", "whole_group", "parallel"), [
    (signal.SIGTERM, False, 2), (signal.SIGTERM, True, 2), (signal.SIGINT, False, 1)],
    ids=["to-the-process", "to-its-process-group", "sigint-one-step-at-a-time"])
def test_sigterm_cancels_both_running_steps_and_commits_nothing(tmp_path: Path, sig: signal.Signals,
                                                                whole_group: bool, parallel: int) -> None:
    """To the process alone (kill PID), or to its process group as systemd, docker and Kubernetes send it: then
    the JVM gets it too and ends by itself, which must not turn the interrupt into a crash. SIGINT (Ctrl-C
    where the terminal's group is not signalled) with one step at a time interrupts the step's own thread."""
    stopped = "terminated by SIGTERM" if sig == signal.SIGTERM else "interrupted (Ctrl-C)"
    started = ("left", "right") if parallel == 2 else ("left",)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "tf_interrupt_e2e.py").write_text(PLUGIN)
    marks = {name: tmp_path / f"{name}.started" for name in ("left", "right", "down")}
    spec = tmp_path / "twosteps.yaml"
    spec.write_text(textwrap.dedent(f"""\
        pipeline: twosteps
        modules: [tf_interrupt_e2e]
        steps:
          left:
            transform: endless_rows
            params: {{marker: "{marks['left']}"}}
            outputs: {{out: {{path: two/left, mode: overwrite}}}}
          right:
            transform: endless_rows
            params: {{marker: "{marks['right']}"}}
            outputs: {{out: {{path: two/right, mode: overwrite}}}}
          down:
            transform: after
            inputs: {{rows: left}}
            params: {{marker: "{marks['down']}"}}
            outputs: {{out: {{path: two/down, mode: overwrite}}}}
        """))
    warehouse = tmp_path / "warehouse"
    tracker_db = tmp_path / "state" / "tracker.sqlite"
    ini = tmp_path / "tickflow.ini"
    ini.write_text(textwrap.dedent(f"""\
        [storage]
        root = {warehouse}
        [tracker]
        sqlite_path = {tracker_db}
        [pipeline]
        log_dir = {tmp_path / 'logs'}
        parallel_steps = {parallel}
        [spark]
        master = local[2]
        spark.driver.memory = 1g
        """))
    env = env_for({"plugins": plugins})
    log = tmp_path / "run.txt"
    with log.open("w") as fh:
        # the SIGINT case runs as a backfill of two dates: its table must still say how far it got
        dates = ["--start", DATE, "--end", NEXT] if sig == signal.SIGINT else ["--date", DATE]
        proc = subprocess.Popen([sys.executable, str(CLI), "run", str(spec), *dates, "--config", str(ini)],
                                cwd=tmp_path, env=env, stdout=fh, stderr=subprocess.STDOUT, text=True,
                                start_new_session=whole_group)
    try:
        staging = warehouse / ".tickflow_staging"
        # every started step is inside its Spark write: neither can end by itself any more
        wait_until(lambda: all(marks[s].exists() for s in started), 180, "the steps to start")
        wait_until(lambda: all(_write_set_up(staging, s) for s in started), 120, "the writes to start")
        jvms = _children(proc.pid)
        if whole_group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = log.read_text()
    assert code == (143 if sig == signal.SIGTERM else 130), out
    assert jvms and not any(_running(pid) for pid in jvms), jvms  # the command returned after its JVM ended
    assert not marks["down"].exists(), out
    assert not (warehouse / "two").exists() or not any((warehouse / "two").iterdir()), out
    assert not staging.exists(), list(staging.rglob("*"))[:10]
    with sqlite3.connect(tracker_db) as db:
        rows = dict(((job, (status, message)) for job, status, message in
                     db.execute("SELECT job_id, status, message FROM job_tracker")))
    assert rows[f"twosteps_{DATE}"] == ("failed", stopped), rows
    for step in started:  # each step's record says it was cancelled, and why
        status, message = rows[f"twosteps.{step}_{DATE}"]
        assert status == "failed", rows
        assert whole_group or message == f"cancelled: {stopped}", rows
    # what Spark logs about the jobs it cancels (as errors) and while its JVM stops goes to the log file only
    assert "SPARK_JOB_CANCELLED" not in out and "Aborting job" not in out and " spark " not in out, out[-3000:]
    end = "terminated" if sig == signal.SIGTERM else "interrupted"
    (run_log,) = (tmp_path / "logs").glob(f"twosteps_{DATE}_*.log")
    logged = run_log.read_text()
    # the run's log says how each running step ended and why the run did (lines the product itself writes
    # before the command returns; a process-group SIGTERM may fail a step on its dead JVM before it is stopping)
    assert f"twosteps {DATE}: {end}: {stopped} (exit {code})" in logged, logged[-3000:]
    why = "" if whole_group else re.escape(f"cancelled: {stopped}")
    for step in started:
        assert re.search(rf"step {step} \(endless_rows\) failed after [0-9.]+s: {why}", logged), logged[-3000:]
    if not whole_group:
        assert "step left (endless_rows) failed after" in out and f"cancelled: {stopped}" in out
    if parallel > 1 and not whole_group:
        # The run cancels the Spark jobs and waits for its steps, whose writes return only after Spark logged
        # the job's abort (the JVM is not signalled): each write's "Aborting job" reached the JVM's stderr before
        # the step ended, and that is read to its end before the log closes. With one step at a time (the SIGINT
        # case) the interrupted thread stops waiting for its write instead: the job ends only when Spark is
        # stopped, and its "Aborting job" may or may not be written before the JVM exits: not asserted there.
        assert logged.count("spark FileFormatWriter: Aborting job") == len(started), logged[-3000:]
    assert f"twosteps.down_{DATE}" not in rows
    assert "Traceback" not in out and f"twosteps {DATE}: {end}: {stopped}" in out, out[-3000:]
    reports = list((warehouse / "_reports" / "twosteps" / DATE).glob("*/report.json"))  # reported like any end
    assert len(reports) == 1 and "log: " in out and "report: " in out, out[-3000:]
    if sig == signal.SIGINT:
        table = out[out.index("\ndate        status"):]
        assert re.search(rf"^{DATE}  interrupted +[0-9.]+s +0  interrupted \(Ctrl-C\)$", table, re.M), table
        assert re.search(rf"^{NEXT}  not run .* not attempted: the run was interrupted$", table, re.M), table
        assert f"twosteps_{NEXT}" not in rows


def test_ctrl_c_while_a_chart_is_fetched_cancels_its_step_quietly(tmp_path: Path) -> None:
    """A step without outputs whose rows feed a chart does its work when the chart is fetched. A Ctrl-C then
    cancelled the fetch's Spark job, PySpark warned with the JVM's whole stack on the console, and the step was
    recorded 'success' with a chart note about the error."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "tf_interrupt_e2e.py").write_text(PLUGIN)
    marker = tmp_path / "fetching"
    spec = tmp_path / "chartstop.yaml"
    spec.write_text(textwrap.dedent(f"""\
        pipeline: chartstop
        modules: [tf_interrupt_e2e]
        report:
          charts:
            - {{title: Endless, source: agg, x: x, y: n}}
        steps:
          rows:
            transform: endless_touching
            params: {{marker: "{marker}"}}
          agg:
            sql: SELECT 1 AS x, sum(id) AS n FROM rows
        """))
    tracker_db = tmp_path / "tracker.sqlite"
    ini = tmp_path / "tickflow.ini"
    ini.write_text(f"[storage]\nroot = {tmp_path / 'warehouse'}\n[tracker]\nsqlite_path = {tracker_db}\n"
                   f"[pipeline]\nlog_dir = {tmp_path / 'logs'}\n[spark]\nmaster = local[2]\n"
                   "spark.driver.memory = 1g\n")
    log = tmp_path / "run.txt"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, str(CLI), "run", str(spec), "--date", DATE, "--config", str(ini)],
                                cwd=tmp_path, env=env_for({"plugins": plugins}), stdout=fh,
                                stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(marker.exists, 180, "the chart's Spark job to process rows")
        proc.send_signal(signal.SIGINT)
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = log.read_text()
    assert code == 130, out[-3000:]
    assert "\tat org.apache" not in out and "UserWarning" not in out and "Traceback" not in out, out[-3000:]
    with sqlite3.connect(tracker_db) as db:
        rows = dict(((job, (status, message)) for job, status, message in
                     db.execute("SELECT job_id, status, message FROM job_tracker")))
    assert rows[f"chartstop_{DATE}"] == ("failed", "interrupted (Ctrl-C)"), rows
    assert rows[f"chartstop.agg_{DATE}"] == ("failed", "cancelled: interrupted (Ctrl-C)"), rows
