"""The CLI as a user meets it: help, validate, plan, list-transforms, exit codes (real processes)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import SQL_STEP_NOTE

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, cwd=None, env_extra=None, timeout=300):
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", **(env_extra or {})}
    return subprocess.run([sys.executable, str(ROOT / "run_pipeline.py"), *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, env=env, timeout=timeout)


def test_help_explains_commands_and_exit_codes():
    out = cli("--help")
    assert out.returncode == 0
    for words in ("validate", "plan", "graph", "list-transforms", "status", "unlock", "exit codes"):
        assert words in out.stdout
    run_help = cli("run", "--help")
    for words in ("--date", "--start", "--select", "--force", "--wait-for-upstream", "--config", "--parallel-steps"):
        assert words in run_help.stdout


def test_wrappers_work_from_any_directory(tmp_path):
    out = subprocess.run([str(ROOT / "preprocess.sh"), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and "--date" in out.stdout


@pytest.mark.parametrize("spec", sorted(p.name for p in (ROOT / "pipelines").glob("*.yaml")))
def test_product_pipelines_validate_and_plan(spec, tmp_path):
    out = cli("validate", ROOT / "pipelines" / spec)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK" in out.stdout
    cfg = tmp_path / "c.ini"
    cfg.write_text(f"[storage]\nroot = {tmp_path}/wh\nraw_root = {tmp_path}/raw\n"
                   f"[tracker]\nsqlite_path = {tmp_path}/t.sqlite\n")
    if spec == "preprocess.yaml":  # a raw root without any raw folder is a config error, --date or not
        out = cli("plan", ROOT / "pipelines" / spec, "--date", "2020-08-06", "--config", cfg)
        assert out.returncode == 2 and "no raw folder csv/ or json/ under the raw root" in out.stderr, out.stderr
        (tmp_path / "raw" / "csv" / "2020-08-05").mkdir(parents=True)
    out = cli("plan", ROOT / "pipelines" / spec, "--date", "2020-08-06", "--config", cfg)
    assert out.returncode == 0, out.stderr
    assert "steps (in order):" in out.stdout and " -> run" in out.stdout
    # nothing has run in this empty tracker: analyze (requires preprocess) would be refused; preprocess finds no
    # raw input before Spark starts, and would compute its steps once the date's raw folder is there
    verdict = next(ln for ln in out.stdout.splitlines() if ln.startswith("verdict:"))
    if spec == "analyze.yaml":
        assert "would exit 3: upstream preprocess_2020-08-06 not successful" in verdict
    else:
        assert "would exit 1 before Spark starts: step ingest: ingest 2020-08-06: no raw input" in verdict
        folder = tmp_path / "raw" / "json" / "2020-08-06" / "NYSE"
        folder.mkdir(parents=True)
        out = cli("plan", ROOT / "pipelines" / spec, "--date", "2020-08-06", "--config", cfg)
        assert ("would exit 1 before Spark starts: step ingest: ingest 2020-08-06: no file under csv/2020-08-06, "
                "json/2020-08-06 matches file_glob 'part-*'") in out.stdout, out.stdout
        (folder / "part-00000.txt").write_text("{}\n")
        out = cli("plan", ROOT / "pipelines" / spec, "--date", "2020-08-06", "--config", cfg)
        assert "verdict:  a run would compute 2 of 2 steps" in out.stdout, out.stdout
    assert not (tmp_path / "wh").exists() or not any((tmp_path / "wh").iterdir())  # plan touches no data


def test_invalid_spec_exits_2_with_all_problems(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("pipeline: demo\nsteps:\n  a:\n    transform: nope\n  b:\n    sql: SELECT 1\n    depends_on: [x]\n")
    out = cli("validate", spec)
    assert out.returncode == 2
    assert f"{spec}:4: steps.a.transform" in out.stdout and f"{spec}:7: steps.b.depends_on[0]" in out.stdout
    out = cli(spec, "--date", "2024-01-05")
    assert out.returncode == 2 and "Traceback" not in out.stderr and "steps.a.transform" in out.stderr


def test_validate_checks_every_spec_whatever_an_earlier_ones_problems(tmp_path):
    """A spec that crashed validation (a list where a mapping belongs, a Latin-1 file) stopped the specs after it."""
    shape = tmp_path / "shape.yaml"
    shape.write_text("pipeline: demo\nsteps:\n  a: {sql: SELECT 1 AS x}\n  b:\n    sql: SELECT * FROM a\n"
                     "    inputs: [a]\n")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("pipeline: demo\n# café\nsteps:\n  a: {sql: SELECT 1 AS x}\n".encode("latin-1"))
    good = ROOT / "pipelines" / "preprocess.yaml"
    out = cli("validate", shape, latin, good)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stdout.splitlines() == [
        f"{shape}: INVALID (1 problem(s))", f"  {shape}:6: steps.b.inputs: expected object, got list ['a']",
        f"{latin}: INVALID (1 problem(s))", f"  {latin}:2: the spec is not UTF-8 text (byte 0xe9); save it as UTF-8",
        f"{good}: OK (pipeline 'preprocess', 2 steps)"]


def test_validate_notes_sql_it_cannot_read_and_spark_finds_the_syntax_error(tmp_path):
    """An analyst's typo (FORM for FROM) in a step that declares its inputs: plain validation cannot judge the
    SQL and says so; with --spark, Spark's parser refuses it at the step's line, as a run would before its first
    step, and leaves no JVM or folder behind."""
    bad = tmp_path / "typo.yaml"
    bad.write_text((ROOT / "pipelines" / "analyze.yaml").read_text().replace(
        "ORDER BY vol DESC, symbol LIMIT 15)", "ORDER BY vol DESC, symbol LIMIT 15)\n      SELEC 1"))
    out = cli("validate", bad, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    line = next(n for n, text in enumerate(bad.read_text().splitlines(), 1) if text.startswith("  chart_volume:"))
    assert out.stdout.splitlines()[1].startswith(f"  note: {bad}:{line}: steps.chart_volume.sql: not checked here "
                                                 "(sqlglot: ")
    out = cli("validate", "--spark", bad, ROOT / "pipelines" / "preprocess.yaml", cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout.splitlines()[:2] == [
        f"{bad}: INVALID (1 problem(s))",
        f"  {bad}:{line}: steps.chart_volume: sql is not valid Spark SQL: [PARSE_SYNTAX_ERROR] Syntax error at or "
        "near 'SELEC'. SQLSTATE: 42601 (line 3, pos 0)"], out.stdout
    good = ROOT / "pipelines" / "preprocess.yaml"
    assert out.stdout.splitlines()[2] == f"{good}: OK (pipeline 'preprocess', 2 steps)"
    assert out.stderr == "" and list(tmp_path.iterdir()) == [bad]


def test_json_logs_end_a_usage_error_with_one_run_ended_event(tmp_path):
    """argparse's usage text is not JSON: a scheduler reading stderr line by line got seven lines of prose."""
    for bad in (["--date", "2024-13-01"], ["--parallel-steps", "0"], ["--log-format=json", "--date", "x"]):
        out = cli("run", ROOT / "pipelines" / "analyze.yaml", "--log-format", "json", *bad, cwd=tmp_path)
        assert out.returncode == 2, out.stderr
        (event,) = [json.loads(line) for line in out.stderr.splitlines()]
        assert (event["event"], event["status"], event["exit_code"]) == ("run_ended", "error", 2)
        assert event["message"].startswith("run_pipeline.py run: error: argument "), event
    out = cli("run", "--log-format", "json", "--help", cwd=tmp_path)  # help is still help
    assert out.returncode == 0 and "--log-format" in out.stdout and out.stderr == ""


def test_bad_usage_exits_2():
    assert cli("run", "pipelines/preprocess.yaml", "--date", "2024-13-40").returncode == 2
    out = cli("run", "x.yaml", "--config", "/nonexistent.ini", "--date", "2024-01-05")
    assert out.returncode == 2 and "config file not found" in out.stderr
    out = cli("run", "pipelines/preprocess.yaml", "--date", "2024-01-05", "--parallel-steps", "0")
    assert out.returncode == 2 and "--parallel-steps: must be at least 1, got 0" in out.stderr


def test_a_missing_spec_file_is_named_as_missing_not_as_an_invalid_spec(tmp_path):
    out = cli("run", "pipelines/analyse.yaml", "--date", "2024-01-05", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: pipelines/analyse.yaml: spec file not found (relative to {tmp_path})"
    out = cli("validate", "pipelines/analyse.yaml", ROOT / "pipelines" / "analyze.yaml", cwd=tmp_path)
    assert out.returncode == 2 and "invalid" not in out.stdout.lower(), out.stdout
    assert out.stdout.splitlines()[0] == f"pipelines/analyse.yaml: spec file not found (relative to {tmp_path})"
    assert out.stdout.splitlines()[1].endswith(": OK (pipeline 'analyze', 14 steps)")


def test_list_transforms_shows_params():
    out = cli("list-transforms")
    assert out.returncode == 0
    assert "read_dataset: Read a committed Parquet dataset" in out.stdout
    assert "path (string, required)" in out.stdout
    assert out.stdout.rstrip().endswith(SQL_STEP_NOTE)  # SQL steps have no transform to list, so they are named


def test_each_command_describes_itself_in_its_help():
    """`status --help` only listed options: what it shows, what unlock does to the job and what forget keeps
    were in the README alone."""
    texts = {cmd: " ".join(cli(cmd, "--help").stdout.split()) for cmd in ("status", "unlock", "forget",
                                                                           "list-transforms")}
    assert "job_tracker rows of the configured tracker" in texts["status"]
    assert "its step rows still running become failed with it" in texts["unlock"]
    assert "Data already written is left as it is" in texts["forget"]
    assert "`sql:` step needs no transform" in texts["list-transforms"]


def test_graph_prints_mermaid(tmp_path):
    spec = tmp_path / "g.yaml"
    spec.write_text("pipeline: g\nsteps:\n  a: {sql: SELECT 1 AS x}\n  b: {sql: SELECT * FROM a, inputs: {a: a}}\n")
    out = cli("graph", spec)
    assert out.returncode == 0 and "a" in out.stdout and "-->" in out.stdout
    out = cli("graph", spec, "--format", "dot")
    assert out.returncode == 0 and "->" in out.stdout and out.stdout.startswith('digraph "g" {')


def test_step_failure_exits_1_with_essential_line(tmp_path):
    spec = tmp_path / "f.yaml"
    spec.write_text("pipeline: f\nsteps:\n  a: {sql: SELECT 1 AS x}\n"
                    "  b:\n    sql: SELECT no_such_col FROM a\n    inputs: {a: a}\n    outputs: {b: {path: f/b}}\n")
    out = cli(spec, "--date", "2024-01-05", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "step 'b' (sql) failed" in out.stderr and "no_such_col" in out.stderr
    assert "Traceback" not in out.stderr and "at org.apache" not in out.stderr
    assert not (tmp_path / "warehouse" / "f" / "b").exists()
    logs = list((tmp_path / ".tickflow" / "logs").glob("f_2024-01-05_*.log"))
    assert logs and "Traceback" in logs[0].read_text()  # the full trace goes to the log file


def test_spark_lines_are_log_records_and_a_failing_tasks_reach_the_log_file_only(tmp_path):
    # a task failure makes Spark's executor log an ERROR with its trace on the JVM's stderr
    spec = tmp_path / "boom.yaml"
    spec.write_text("pipeline: boom\nsteps:\n  a:\n    sql: SELECT raise_error(concat('boom-', CAST(id AS STRING)))"
                    " AS x FROM range(2)\n    outputs: {a: {path: boom/a}}\n")
    out = cli(spec, "--date", "2024-01-05", "--log-format", "json", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    records = [json.loads(line) for line in out.stderr.splitlines() if line.strip()]  # every line is JSON
    spark = [r for r in records if r.get("logger") == "spark"]
    # a failing task's records (about 20 lines) go to the log file only: the step's verdict sums them up
    assert not any("Exception in task" in r["message"] or "Aborting task" in r["message"] for r in spark), spark
    assert not any("incubator" in r.get("message", "") for r in records)
    assert records[-1]["event"] == "run_ended" and records[-1]["status"] == "failed"
    assert "boom-" in records[-1]["message"]
    logs = list((tmp_path / ".tickflow" / "logs").glob("boom_2024-01-05_*.log"))
    assert logs and "spark Executor: Exception in task" in logs[0].read_text()


def _local_config(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "c.ini"
    cfg.write_text(f"[storage]\nroot = {tmp_path}/wh\nraw_root = {tmp_path}/raw\n"
                   f"[tracker]\nsqlite_path = {tmp_path}/t.sqlite\n{extra}")
    return cfg


def test_a_dry_run_plans_the_dates_the_run_would_process(tmp_path):
    for day in ("2024-01-04", "2024-01-05"):
        part = tmp_path / "raw" / "csv" / day / "NYSE" / "part-00000.txt"
        part.parent.mkdir(parents=True)
        part.write_text(f"{day},{day} 09:30:00.0,T,SYMA,{day} 09:30:00.0,1,NYSE,10.5,100\n")
    cfg = _local_config(tmp_path)
    spec = ROOT / "pipelines" / "preprocess.yaml"
    for args in (["--dry-run"], ["--dry-run", "--start", "2024-01-01", "--end", "2024-01-31"], ["plan"]):
        argv = ["plan", spec] if args == ["plan"] else [spec, *args]
        out = cli(*argv, "--config", cfg)
        assert out.returncode == 0, out.stderr
        planned = [ln.rsplit(" ", 1)[-1] for ln in out.stdout.splitlines() if ln.startswith("plan for pipeline")]
        assert planned == ["2024-01-04", "2024-01-05"], (args, out.stdout)
    assert not (tmp_path / "wh").exists()


def test_plan_names_the_lock_holder(tmp_path):
    from engine.config import load_config
    from engine.tracker.factory import open_tracker

    cfg = _local_config(tmp_path)
    (tmp_path / "raw" / "csv").mkdir(parents=True)
    tracker = open_tracker(load_config(cfg, env={}))
    assert tracker.acquire("preprocess_2024-01-04", lease_seconds=600, holder_host="etl-7", holder_pid=4242)
    tracker.close()
    out = cli("plan", ROOT / "pipelines" / "preprocess.yaml", "--date", "2024-01-04", "--config", cfg)
    assert out.returncode == 0, out.stderr
    assert "locked by etl-7 (pid 4242)" in out.stdout and "would exit 4: running on etl-7 (pid 4242)" in out.stdout
    assert re.search(r"\(lease until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)", out.stdout), out.stdout
    tracker = open_tracker(load_config(cfg, env={}))
    assert tracker.acquire("preprocess_2024-01-05", lease_seconds=600, holder_host="etl-8", holder_pid=4343)
    tracker.close()
    with sqlite3.connect(tmp_path / "t.sqlite") as db:  # the holder died long ago
        db.execute("UPDATE job_tracker SET lease_expires = ? WHERE job_id = ?",
                   ("2024-01-05 23:00:00", "preprocess_2024-01-05"))
    out = cli("plan", ROOT / "pipelines" / "preprocess.yaml", "--date", "2024-01-05", "--config", cfg)
    assert out.returncode == 0, out.stderr
    assert ("job:      preprocess_2024-01-05: running, lock of etl-8 (pid 4343) expired at 2024-01-05 23:00:00 UTC "
            "(a run would take it over)") in out.stdout
    assert "would exit 4" not in out.stdout


@pytest.mark.parametrize("args,words", [
    (["--select", "nosuch"], "error: unknown step(s) in --select: 'nosuch'; steps are: ingest, eod"),
    (["--select", " "], "error: --select is empty; give a step"),
    (["--select", "++eod"], "error: malformed selector '++eod' in --select"),
    (["--date", "20240104"], "argument --date: '20240104' is not a date; expected YYYY-MM-DD"),
    (["--date", "0001-01-01"], "argument --date: '0001-01-01' is out of range; expected a date from 1900-01-01"),
    (["--wait-for-upstream", "-5"], "argument --wait-for-upstream: must be 0 or more seconds, got -5"),
    (["--var", "max_bad_share"], "argument --var: expected NAME=VALUE, got 'max_bad_share'"),
    (["--var", "max_bad_shar=0.2"], "--var max_bad_shar: the spec declares no such variable (its vars: max_bad_share)"),
    (["--date", "2024-01-04", "--start", "2024-01-01", "--end", "2024-01-05"],
     "give either --date or --start/--end, not both"),
    (["--start", "2024-01-08", "--end", "2024-01-05"], "--start 2024-01-08 is after --end 2024-01-05"),
    (["--start", "2024-01-08"], "a backfill needs both --start and --end"),
])
def test_usage_errors_exit_2_before_anything_starts(tmp_path, args, words):
    dated = "--date" in args or "--start" in args
    for command in (["run"], ["plan"]) if "--wait-for-upstream" not in args else (["run"],):  # a run option
        out = cli(*command, ROOT / "pipelines" / "preprocess.yaml", *([] if dated else ["--date", "2024-01-04"]),
                  *args, "--config", _local_config(tmp_path))
        assert out.returncode == 2, out.stderr
        assert words in out.stderr and "Traceback" not in out.stderr
        assert not (tmp_path / "t.sqlite").exists()  # refused before the tracker, let alone Spark
        assert not (tmp_path / "wh").exists()  # and before the storage root is made


def test_a_log_dir_that_cannot_be_made_exits_2_naming_it_before_spark(tmp_path):
    """It used to end in two tracebacks (exit 1)."""
    (tmp_path / "a_file").write_text("")
    (tmp_path / "raw" / "csv").mkdir(parents=True)
    cfg = _local_config(tmp_path, f"[pipeline]\nlog_dir = {tmp_path}/a_file/logs\n")
    out = cli(ROOT / "pipelines" / "preprocess.yaml", "--date", "2024-01-04", "--config", cfg)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"error: cannot write the run's log under [pipeline] log_dir {tmp_path}/a_file/logs: "
                                 ), out.stderr
    assert "Traceback" not in out.stderr and "starting Spark" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_json_logs_end_every_refusal_with_a_run_ended_event(tmp_path):
    cfg = _local_config(tmp_path)
    out = cli(ROOT / "pipelines" / "analyze.yaml", "--date", "2024-01-04", "--config", cfg, "--log-format", "json",
              cwd=tmp_path)
    assert out.returncode == 3, out.stderr
    records = [json.loads(line) for line in out.stderr.splitlines() if line.strip()]
    assert records[-1]["event"] == "run_ended" and records[-1]["status"] == "blocked"
    assert records[-1]["exit_code"] == 3 and "preprocess_2024-01-04" in records[-1]["message"]
    # the log file the run names says why it did not run (once: the console line is not repeated there)
    assert sum(r.get("event") == "run_ended" for r in records) == 1
    (log_file,) = (tmp_path / ".tickflow" / "logs").glob("analyze_2024-01-04_*.log")
    logged = log_file.read_text()
    assert "analyze 2024-01-04: blocked: cannot run analyze_2024-01-04: upstream job preprocess_2024-01-04 " in logged
    assert "(exit 3)" in logged
    out = cli(ROOT / "pipelines" / "analyze.yaml", "--date", "2024-01-04", "--config", cfg, "--log-format", "json",
              "--select", "nosuch")
    assert out.returncode == 2
    (event,) = [json.loads(line) for line in out.stderr.splitlines()]
    assert event["event"] == "run_ended" and event["status"] == "error" and event["exit_code"] == 2
    assert "unknown step(s) in --select: 'nosuch'" in event["message"]


def test_secrets_are_masked_in_what_commands_print(tmp_path):
    secret = "Zq9-hunter2"
    cfg = _local_config(tmp_path, f"[postgres]\npassword = {secret}\nport = 1\n")
    spec = tmp_path / "s.yaml"
    spec.write_text(f"pipeline: s\nsteps:\n  a:\n    sql: SELECT 1 AS x\n    cache: '{secret}'\n")
    out = cli("validate", spec, "--config", cfg)
    assert out.returncode == 2 and "steps.a.cache" in out.stdout
    assert secret not in out.stdout and "***" in out.stdout
    out = cli(spec, "--date", "2024-01-04", "--config", cfg)
    assert out.returncode == 2 and "steps.a.cache" in out.stderr
    assert secret not in out.stderr + out.stdout and "***" in out.stderr


def test_a_reader_that_goes_away_ends_the_output_quietly(tmp_path):
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_pipeline.py"), "list-transforms", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.close()  # before the interpreter has even started: every write meets a closed pipe
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert stderr == ""


def test_an_interpreter_without_the_dependencies_continues_in_the_checkout_venv(tmp_path):
    base = Path(sys.base_prefix) / "bin" / "python3"  # the venv's own interpreter, without its packages
    probe = subprocess.run([str(base), "-c", "import pyspark"], capture_output=True)
    assert probe.returncode != 0, "the base interpreter has pyspark: this test would prove nothing"
    out = subprocess.run([str(base), str(ROOT / "run_pipeline.py"), "list-transforms"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "read_dataset: Read a committed Parquet dataset" in out.stdout


def test_a_date_without_raw_input_fails_before_spark_starts(tmp_path):
    day = tmp_path / "raw" / "csv" / "2024-01-04" / "NYSE"  # another date's input only
    day.mkdir(parents=True)
    (day / "part-00000.txt").write_text("2024-01-04,2024-01-04 09:30:00.0,T,SYMA,2024-01-04 09:30:00.0,1,NYSE,"
                                        "10.5,100\n")
    cfg = _local_config(tmp_path)
    out = cli(ROOT / "pipelines" / "preprocess.yaml", "--date", "2024-01-08", "--config", cfg, cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert (f"step 'ingest' (ingest_raw) failed: ingest 2024-01-08: no raw input under csv/2024-01-08, "
            f"json/2024-01-08 of the raw root (local folder {tmp_path / 'raw'})") in out.stderr
    (log,) = (tmp_path / ".tickflow" / "logs").glob("preprocess_2024-01-08_*.log")
    assert "failed before Spark started" in log.read_text() and "starting Spark" not in log.read_text()
    rows = {r["job_id"]: r["status"] for r in json.loads(cli("status", "--steps", "--json", "--config", cfg).stdout)}
    assert rows["preprocess_2024-01-08"] == "failed" and rows["preprocess.ingest_2024-01-08"] == "failed"
    assert not (tmp_path / "wh" / "trade").exists()


def test_a_catch_up_reports_dates_whose_upstream_job_did_not_succeed(tmp_path):
    from engine.config import load_config
    from engine.tracker.factory import open_tracker

    cfg = _local_config(tmp_path)
    tracker = open_tracker(load_config(cfg, env={}))
    for day, status in (("2024-01-05", "failed"), ("2024-01-09", "running")):
        lease = tracker.acquire(f"preprocess_{day}", lease_seconds=600, holder_host="etl-7", holder_pid=4242)
        if status != "running":
            tracker.release(lease, status, "ingest failed")
    tracker.close()
    spec = ROOT / "pipelines" / "analyze.yaml"
    for args in ([], ["--start", "2024-01-01", "--end", "2024-01-31"]):
        out = cli(spec, *args, "--keep-going", "--config", cfg, cwd=tmp_path)
        assert out.returncode == 3, (args, out.stderr)
        table = [ln.split()[:2] for ln in out.stdout.splitlines() if ln.startswith("2024-")]
        assert table == [["2024-01-05", "blocked"], ["2024-01-09", "blocked"]], out.stdout
        assert "upstream job preprocess_2024-01-05 (status: failed)" in out.stderr
    out = cli(spec, "--config", cfg, cwd=tmp_path)  # without --keep-going the first blocked date ends the catch-up
    assert out.returncode == 3
    assert "analyze 2024-01-05: blocked" in out.stderr and "2024-01-09" not in out.stderr
    table = [ln.split(None, 2) for ln in out.stdout.splitlines() if ln.startswith("2024-")]
    assert [t[:2] for t in table] == [["2024-01-05", "blocked"], ["2024-01-09", "not"]], out.stdout
    assert table[1][2].split() == ["run", "0.0s", "0", "not", "attempted:", "2024-01-05", "was", "blocked",
                                   "(--keep-going", "goes", "on)"]
    # a mistaken preprocess job (e.g. a mistyped date) is forgotten: the catch-up no longer offers its date
    out = cli("forget", "preprocess_2024-01-05", "--yes", "--config", cfg)
    assert out.returncode == 0 and "forgot preprocess_2024-01-05 and 0 step row(s)" in out.stdout, out.stderr
    out = cli("plan", spec, "--config", cfg, cwd=tmp_path)
    planned = [ln.rsplit(" ", 1)[-1] for ln in out.stdout.splitlines() if ln.startswith("plan for pipeline")]
    assert planned == ["2024-01-09"], out.stdout


def _plan_only_the_5th_again(cfg: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """An analyze catch-up's plan over 2024-01-04 and 05, both at success: only the 5th is planned."""
    out = cli("plan", ROOT / "pipelines" / "analyze.yaml", "--config", cfg, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "analyze 2024-01-04: already succeeded; a run would leave it alone" in out.stdout
    planned = [ln.rsplit(" ", 1)[-1] for ln in out.stdout.splitlines() if ln.startswith("plan for pipeline")]
    assert planned == ["2024-01-05"], out.stdout
    return out


def test_a_catch_up_reruns_a_date_whose_upstream_job_succeeded_again(tmp_path):
    from engine.config import load_config
    from engine.tracker.factory import open_tracker

    cfg = _local_config(tmp_path)
    tracker = open_tracker(load_config(cfg, env={}))
    for job in ("preprocess_2024-01-04", "analyze_2024-01-04", "preprocess_2024-01-05", "analyze_2024-01-05"):
        tracker.set_status(job, "success")
    while tracker.get("preprocess_2024-01-05").updated_time <= tracker.get("analyze_2024-01-05").updated_time:
        tracker.set_status("preprocess_2024-01-05", "success")  # preprocess reran the 5th after analyze
    tracker.close()
    out = _plan_only_the_5th_again(cfg, tmp_path)
    assert ("verdict:  a run would recompute every step: upstream job preprocess_2024-01-05 succeeded again at "
            in out.stdout)
    assert " -> skip" not in out.stdout  # no step is reused from the outdated run


def test_a_catch_up_runs_again_a_date_whose_written_partition_is_gone(tmp_path):
    """The tracker says analyze 2024-01-05 succeeded, but its prior_close partition was deleted by hand: the
    catch-up plans the date again, reusing the steps whose partitions are still there."""
    from engine.config import load_config
    from engine.tracker.factory import open_tracker

    cfg = _local_config(tmp_path)
    outputs = {"trade_ma": "trade_moving_avg", "prior_close": "prior_close", "quote_enriched": "quote_enriched",
               "bars_1m": "bars_1m", "daily_metrics": "daily_metrics", "exchange_share": "exchange_share",
               "market_summary": "market_summary"}
    tracker = open_tracker(load_config(cfg, env={}))
    for day in ("2024-01-04", "2024-01-05"):
        tracker.set_status(f"preprocess_{day}", "success")
        for step, out in outputs.items():
            (tmp_path / "wh" / "analytics" / out / f"trade_dt={day}").mkdir(parents=True)
            written = {"partitions": {out: [f"trade_dt={day}"]}, "rows": {out: 1}}
            tracker.set_status(f"analyze.{step}_{day}", "success", json.dumps(written))
        tracker.set_status(f"analyze_{day}", "success")
    tracker.close()
    (tmp_path / "wh" / "analytics" / "prior_close" / "trade_dt=2024-01-05").rmdir()
    out = _plan_only_the_5th_again(cfg, tmp_path)
    assert ("verdict:  a run would run the job again: partition(s) it wrote are gone from storage "
            "(analytics/prior_close/trade_dt=2024-01-05)") in out.stdout
    steps = dict(re.findall(r"\d+\. (\w+) \[[^]]+\] -> (\w+)", out.stdout))
    assert steps["prior_close"] == steps["quote_enriched"] == "run", out.stdout  # gone, and downstream of it
    assert steps["bars_1m"] == steps["exchange_share"] == "skip", out.stdout


def test_a_plan_whose_dates_all_succeeded_says_so(tmp_path):
    from engine.config import load_config
    from engine.tracker.factory import open_tracker

    cfg = _local_config(tmp_path)
    with open_tracker(load_config(cfg, env={})) as tracker:
        for job in ("preprocess_2024-01-04", "analyze_2024-01-04"):
            tracker.set_status(job, "success")
    out = cli("plan", ROOT / "pipelines" / "analyze.yaml", "--start", "2024-01-01", "--end", "2024-01-31",
              "--config", cfg, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "analyze 2024-01-04: already succeeded; a run would leave it alone (use --force)",
        "analyze: nothing to do (every date already succeeded)"]
    # a catch-up run says why it has nothing to do, and starts no JVM
    run = cli(ROOT / "pipelines" / "analyze.yaml", "--config", cfg, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "analyze: nothing to do (every date already succeeded)" in run.stdout
    assert "starting Spark" not in run.stderr


def test_a_catch_up_reruns_later_dates_after_an_earlier_upstream_date_succeeded_again(tmp_path):
    """analyze reads earlier dates' closes (reads_earlier_dates: true): a restated preprocess date outdates every
    later analyze date; a copy of the spec without the key leaves them alone."""
    from engine.config import load_config
    from engine.tracker.factory import open_tracker

    cfg = _local_config(tmp_path)
    tracker = open_tracker(load_config(cfg, env={}))
    days = ("2024-01-04", "2024-01-05", "2024-01-08")
    for day in days:
        tracker.set_status(f"preprocess_{day}", "success")
        tracker.set_status(f"analyze_{day}", "success")
    while tracker.get("preprocess_2024-01-05").updated_time <= tracker.get("analyze_2024-01-08").updated_time:
        tracker.set_status("preprocess_2024-01-05", "success")  # the 5th restated after every analyze run
    tracker.close()
    spec = ROOT / "pipelines" / "analyze.yaml"
    out = cli("plan", spec, "--config", cfg, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    planned = [ln.rsplit(" ", 1)[-1] for ln in out.stdout.splitlines() if ln.startswith("plan for pipeline")]
    assert planned == ["2024-01-05", "2024-01-08"], out.stdout
    assert "analyze 2024-01-04: already succeeded; a run would leave it alone" in out.stdout
    assert ("verdict:  a run would recompute every step: upstream job preprocess_2024-01-05 (an earlier date, "
            "which this job reads) succeeded at ") in out.stdout
    assert "after analyze_2024-01-08 started at" in out.stdout
    plain = tmp_path / "analyze_plain.yaml"
    plain.write_text(spec.read_text().replace("reads_earlier_dates: true", "reads_earlier_dates: false"))
    out = cli("plan", plain, "--config", cfg, "--date", "2024-01-08", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "verdict:  a run would do nothing: the job already succeeded" in out.stdout


def test_a_catch_up_from_a_wrong_raw_root_exits_2_naming_it_before_the_tracker_or_spark(tmp_path):
    """A missing or mistyped raw root used to end "nothing to do (no new input dates)" with exit 0: a nightly
    job pointed at the wrong folder would succeed forever."""
    cfg = _local_config(tmp_path)
    spec = ROOT / "pipelines" / "preprocess.yaml"
    wanted = (f"error: preprocess: no raw folder csv/ or json/ under the raw root (local folder {tmp_path / 'raw'}); "
              f"check [storage] raw_root (or TICKFLOW_STORAGE_RAW_ROOT)")
    for layout in ("missing", "other folders only"):
        if layout != "missing":
            (tmp_path / "raw" / "xml" / "2024-01-04").mkdir(parents=True)
        for argv in (["run", spec], ["plan", spec], [spec, "--dry-run"], [spec, "--start", "2024-01-01", "--end",
                                                                          "2024-01-31"]):
            out = cli(*argv, "--config", cfg, cwd=tmp_path)
            assert out.returncode == 2, (layout, argv, out.stdout, out.stderr)
            assert out.stderr.strip() == wanted, (layout, argv)
            assert out.stdout == ""
            assert not (tmp_path / "t.sqlite").exists() and not (tmp_path / "wh").exists()
    out = cli(spec, "--config", cfg, "--log-format", "json", cwd=tmp_path)
    (event,) = [json.loads(line) for line in out.stderr.splitlines()]
    assert event["status"] == "error" and event["exit_code"] == 2 and "no raw folder csv/ or json/" in event["message"]
    # a catch-up driven by an upstream job does not look at the raw root
    out = cli(ROOT / "pipelines" / "analyze.yaml", "--config", cfg, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == (
        "analyze: nothing to do (no job of upstream pipeline 'preprocess' is recorded in the job tracker (SQLite "
        f"{tmp_path / 't.sqlite'} table job_tracker))"), out.stderr
    # the folders are there but offer no new date: still nothing to do, now saying where it looked
    (tmp_path / "raw" / "json").mkdir()
    for argv in (["run", spec], ["plan", spec]):
        out = cli(*argv, "--config", cfg, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == (f"preprocess: nothing to do (no new input dates in csv/ and json/ under "
                                      f"local folder {tmp_path / 'raw'})")
        assert "starting Spark" not in out.stderr
    from engine.config import load_config
    from engine.tracker.factory import open_tracker

    (tmp_path / "raw" / "json" / "2024-01-04").mkdir()
    with open_tracker(load_config(cfg, env={})) as tracker:
        tracker.set_status("preprocess_2024-01-04", "success")
    out = cli("plan", spec, "--config", cfg, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "preprocess: nothing to do (every date already succeeded)"


def test_config_mistakes_exit_2_without_showing_a_wrapped_secret(tmp_path):
    key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
    cfg = tmp_path / "c.ini"
    cfg.write_text(f"[azure]\nstorage_account = acct\naccess_key =\n{key}\n")
    for argv in (["status"], ["plan", ROOT / "pipelines" / "preprocess.yaml"]):
        out = cli(*argv, "--config", cfg)
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip() == (f"error: {cfg}: [azure] line 4: a line that is not 'key = value' (not shown: it "
                                      f"may be a wrapped secret value; write a value on the line of its key)")
        assert key[:8].lower() not in (out.stdout + out.stderr).lower()
    cfg.write_text(f"[tracker]\nsqlite_path = {tmp_path}/t.sqlite\ntable = jobs\njob_tracker_table_name = ops_jobs\n")
    out = cli("status", "--config", cfg)
    assert out.returncode == 2 and "[tracker] job_tracker_table_name 'ops_jobs' and table 'jobs'" in out.stderr
    cfg.write_text(f"[tracker]\nsqlite_path = {tmp_path}/t.sqlite\njob_tracker_table_name = ops_jobs\n")
    out = cli("status", "--config", cfg)
    assert out.returncode == 0 and f"no jobs in SQLite {tmp_path}/t.sqlite table ops_jobs" in out.stdout, out.stderr


def test_a_backfill_without_a_catch_up_source_plans_the_trading_days(tmp_path):
    """--start/--end of a spec whose dates come from nowhere else: weekdays, minus [pipeline] holidays."""
    spec = tmp_path / "s.yaml"
    spec.write_text("pipeline: s\nsteps:\n  a:\n    sql: SELECT 1 AS x\n    inputs: {}\n")
    cfg = _local_config(tmp_path, "[pipeline]\nholidays = 2024-01-15\n")  # a Monday
    out = cli("plan", spec, "--start", "2024-01-12", "--end", "2024-01-17", "--config", cfg, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    planned = [ln.rsplit(" ", 1)[-1] for ln in out.stdout.splitlines() if ln.startswith("plan for pipeline")]
    assert planned == ["2024-01-12", "2024-01-16", "2024-01-17"], out.stdout


def test_a_spec_writing_a_dataset_another_pipeline_writes_is_refused_before_its_run(tmp_path):
    """An analyst's copy of a step wrote `path: quarantine` in the analyze pipeline: the run replaced
    preprocess's bad records of the date, and exited 0."""
    from engine.config import load_config
    from engine.step_message import written_message
    from engine.tracker.factory import open_tracker

    cfg = _local_config(tmp_path)
    with open_tracker(load_config(str(cfg))) as tracker:  # what a preprocess run records for its ingest step
        tracker.set_status("preprocess.ingest_2024-01-04", "success", written_message(
            {"quarantine": ["trade_dt=2024-01-04"]}, {"quarantine": 7}, {"quarantine": "quarantine"}))
    spec = tmp_path / "mine.yaml"
    spec.write_text("pipeline: mine\nsteps:\n  blocks:\n    sql: SELECT DATE'2024-01-05' AS trade_dt, 1 AS n\n"
                    "    outputs: {b: {path: quarantine/extra, partition_by: [trade_dt]}}\n")
    out = cli("run", spec, "--date", "2024-01-05", "--config", cfg, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert (f"{spec}:3: steps.blocks.outputs.b.path: dataset 'quarantine/extra' would overwrite 'quarantine', "
            "which pipeline 'preprocess' writes (step ingest)") in out.stderr
    assert "starting Spark" not in out.stderr and not (tmp_path / "wh").exists()
    out = cli("plan", spec, "--date", "2024-01-05", "--config", cfg, cwd=tmp_path)  # plan says the same
    verdict = next(ln for ln in out.stdout.splitlines() if ln.startswith("verdict:"))
    assert verdict.startswith("verdict:  a run would exit 2: ") and "would overwrite 'quarantine'" in verdict
    spec.write_text(spec.read_text().replace("quarantine/extra", "analytics/blocks"))  # its own dataset: runs
    assert cli("run", spec, "--date", "2024-01-05", "--config", cfg, cwd=tmp_path).returncode == 0


def test_sigterm_while_waiting_for_an_upstream_job_ends_the_run_with_its_line_and_143(tmp_path):
    """No job is held while waiting, so no guard handled the signal: the process ended at once, with no word."""
    import signal

    cfg = _local_config(tmp_path)
    spec = tmp_path / "down.yaml"
    spec.write_text("pipeline: down\nrequires: [up]\nsteps:\n  a: {sql: SELECT 1 AS x}\n")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_pipeline.py"), "run", str(spec), "--date",
                             "2024-01-05", "--config", str(cfg), "--wait-for-upstream", "120"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        for line in proc.stderr:  # type: ignore[union-attr]
            seen.append(line)
            if "waiting up to 120 s for upstream job up_2024-01-05" in line:
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, "".join(seen) + err
    assert "down 2024-01-05: terminated: terminated by SIGTERM" in err, "".join(seen) + err
    assert "Traceback" not in err


def test_plan_and_run_name_a_raw_root_or_storage_they_cannot_read(azurite, tmp_path):
    """Wrong credentials are reported as such, naming the root, by plan as by run, before tracker and Spark."""
    import base64

    from tests.azurite import ACCOUNT

    wrong = base64.b64encode(os.urandom(64)).decode()
    (tmp_path / "raw" / "csv" / "2020-08-05").mkdir(parents=True)
    azure = f"[azure]\nstorage_account = {ACCOUNT}\nendpoint = {azurite.endpoint}\ncontainer = market\n"
    env = {"TICKFLOW_AZURE_ACCESS_KEY": wrong}
    spec = ROOT / "pipelines" / "preprocess.yaml"
    cases = {  # root, raw root -> what the message names
        "raw": (f"{tmp_path}/wh", "az://market/raw", "read the raw root's container failed: access denied"),
        "storage": ("az://market/wh", f"{tmp_path}/raw", "check the container failed: access denied"),
    }
    for name, (root, raw_root, words) in cases.items():
        cfg = tmp_path / f"{name}.ini"
        cfg.write_text(f"[storage]\nroot = {root}\nraw_root = {raw_root}\ncache_dir = {tmp_path}/cache\n"
                       f"[tracker]\nsqlite_path = {tmp_path}/t.sqlite\n" + azure)
        for command in (("plan", spec, "--date", "2020-08-05"), ("run", spec, "--date", "2020-08-05")):
            out = cli(*command, "--config", cfg, env_extra=env)
            assert out.returncode == 2, (name, command[0], out.stdout, out.stderr)
            assert words in out.stderr and f"account={ACCOUNT}" in out.stderr, (name, command[0], out.stderr)
            assert wrong not in out.stdout + out.stderr
    assert not (tmp_path / "t.sqlite").exists()  # refused before the tracker was opened


def test_a_wrappers_help_and_usage_errors_show_its_own_usage_without_spec(tmp_path):
    """./analyze.sh --help showed `usage: run_pipeline.py run ... SPEC`, a SPEC the wrapper passes itself (and
    refuses a second time as an unrecognized argument)."""
    for name in ("preprocess", "analyze"):
        out = subprocess.run([str(ROOT / f"{name}.sh"), "--help"], capture_output=True, text=True, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(f"usage: ./{name}.sh [-h]"), out.stdout[:200]
        assert "SPEC" not in out.stdout and "run_pipeline.py run" not in out.stdout
        assert f"pipelines/{name}.yaml" in out.stdout and "--date" in out.stdout
    bad = subprocess.run([str(ROOT / "analyze.sh"), "--bogus"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("usage: ./analyze.sh [-h]"), bad.stderr
    assert "./analyze.sh: error: unrecognized arguments: --bogus" in bad.stderr and "SPEC" not in bad.stderr
    assert "usage: run_pipeline.py run [-h]" in cli("run", "--help").stdout  # the CLI itself is unchanged
