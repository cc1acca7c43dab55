"""A run killed (SIGKILL) between the commits of a step's two outputs: the next run on the warehouse, of any
pipeline, finishes that commit from its journal before it does anything else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "run_pipeline.py"
DATE = "2020-08-06"

PLUGIN = '''
from pyspark.sql import functions as F

from engine.registry import transform

SCHEMA = {"type": "object", "additionalProperties": False, "properties": {"n": {"type": "integer"}}}


@transform("journal_pair", description="Even and odd numbers below n.", params_schema=SCHEMA, inputs=[],
           outputs=["even", "odd"])
def journal_pair(ctx, inputs, params):
    nums = ctx.spark.range(params["n"])
    return {"even": nums.where(F.col("id") % 2 == 0), "odd": nums.where(F.col("id") % 2 == 1)}


@transform("journal_one", description="One row.", params_schema={"type": "object"}, inputs=[])
def journal_one(ctx, inputs, params):
    return ctx.spark.range(1)
'''

# Runs the CLI with os.replace wrapped: the process SIGKILLs itself once the new `pair/even` is in place
KILLED_AFTER_EVEN = """
import os, runpy, signal, sys
real_replace = os.replace
def replace(src, dst):
    real_replace(src, dst)
    if str(dst).endswith("pair/even") and ".tickflow_trash" not in str(dst):
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _project(tmp_path: Path) -> dict[str, Path]:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "tf_journal_e2e.py").write_text(PLUGIN)
    pair = tmp_path / "pair.yaml"
    pair.write_text(textwrap.dedent("""\
        pipeline: pairjob
        modules: [tf_journal_e2e]
        vars: {n: 10}
        steps:
          split:
            transform: journal_pair
            params: {n: "{{ vars.n }}"}
            outputs:
              even: {path: pair/even, mode: overwrite}
              odd: {path: pair/odd, mode: overwrite}
        """))
    other = tmp_path / "other.yaml"
    other.write_text(textwrap.dedent("""\
        pipeline: otherjob
        modules: [tf_journal_e2e]
        steps:
          one:
            transform: journal_one
            outputs:
              out: {path: other/out, mode: overwrite}
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
        """))
    return {"tmp": tmp_path, "plugins": plugins, "pair": pair, "other": other, "ini": ini}


def _run(project: dict[str, Path], spec: Path, *extra: str, killed: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join([str(project["plugins"]), str(ROOT)])
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    head = [sys.executable, "-c", KILLED_AFTER_EVEN] if killed else [sys.executable]
    return subprocess.run([*head, str(CLI), str(spec), "--date", DATE, "--config", str(project["ini"]), *extra],
                          cwd=project["tmp"], env=env, capture_output=True, text=True, timeout=300)


def _rows(warehouse: Path, rel: str) -> list[int]:
    return sorted(pq.read_table(warehouse / rel).column("id").to_pylist())


def test_a_run_killed_between_two_output_commits_is_finished_by_the_next_run(tmp_path: Path) -> None:
    project = _project(tmp_path)
    warehouse = tmp_path / "warehouse"
    first = _run(project, project["pair"])
    assert first.returncode == 0, first.stdout + first.stderr
    assert _rows(warehouse, "pair/odd") == [1, 3, 5, 7, 9]

    killed = _run(project, project["pair"], "--var", "n=16", "--force", killed=True)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert _rows(warehouse, "pair/even") == list(range(0, 16, 2))
    assert _rows(warehouse, "pair/odd") == [1, 3, 5, 7, 9]  # new evens beside old odds, for now
    journals = list((warehouse / ".tickflow_staging").glob("*-journal-*.json"))
    assert journals
    killed_run = json.loads(journals[0].read_text())["writes"][0]["run_id"]

    other = _run(project, project["other"])
    assert other.returncode == 0, other.stdout + other.stderr
    assert (f"finished the commit of an ended run (run {killed_run}): pair/even, pair/odd"
            in other.stdout + other.stderr)
    assert _rows(warehouse, "pair/odd") == list(range(1, 16, 2))
    assert _rows(warehouse, "pair/even") == list(range(0, 16, 2))
    assert not (warehouse / ".tickflow_staging").exists() and not (warehouse / ".tickflow_trash").exists()
