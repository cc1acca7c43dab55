"""pipelines/preprocess.yaml end to end through run_pipeline.py (a subprocess with its own JVM)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from jsonschema import Draft202012Validator

from datagen import GenConfig, generate
from tests.transforms import preprocess_reference as ref

pytestmark = pytest.mark.slow
DAYS = ("2020-08-07", "2020-08-10")  # Friday, then Monday


def _run(root: Path, cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
    return subprocess.run([sys.executable, "run_pipeline.py", "run", "pipelines/preprocess.yaml", "--config",
                           str(cfg), *args], cwd=root, env=env, capture_output=True, text=True, timeout=600)


def _partition(store: Path, dataset: str, day: str) -> list[dict]:
    path = store / dataset / f"trade_dt={day}"
    return pq.ParquetDataset(path).read().to_pylist() if path.exists() else []


def _conforms(schemas: Path, store: Path, dataset: str, day: str) -> int:
    """Every row of the date's partition (the partition value put back as its column) is valid under the
    dataset's published schema (schemas/data/<dataset>.json), which names exactly the dataset's columns."""
    schema = json.loads((schemas / f"{dataset}.json").read_text())
    validator = Draft202012Validator(schema)
    rows = _partition(store, dataset, day)
    for row in rows:
        doc = {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in row.items()} | {"trade_dt": day}
        problems = sorted(e.message for e in validator.iter_errors(doc))
        assert not problems, f"{dataset} row {row} does not match {dataset}.json: {problems}"
    columns = set(pq.ParquetDataset(store / dataset / f"trade_dt={day}").schema.names) | {"trade_dt"}
    assert columns == set(schema["properties"]) and schema["x-partition-by"] == ["trade_dt"], dataset
    return len(rows)


def test_catch_up_then_rerun_one_date(repo_root, tmp_path):
    raw, store = tmp_path / "raw", tmp_path / "store"
    generate(GenConfig(out=raw, seed=9, start=dt.date(2020, 8, 7), days=2, events=2000, symbols=2, parts=2,
                       bad_rate=0.01, correction_rate=0.05))
    cfg = tmp_path / "cfg.ini"
    cfg.write_text(f"[storage]\nroot = {store}\nraw_root = {raw}\n[tracker]\nsqlite_path = {tmp_path}/t.db\n"
                   "[spark]\nmaster = local[2]\nspark.sql.shuffle.partitions = 4\n")
    done = _run(repo_root, cfg)  # no --date: every raw date, oldest first
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for day in DAYS:
        d = dt.date.fromisoformat(day)
        records = ref.ingest_day(raw, d)
        best = ref.eod(records)
        trades = _partition(store, "trade", day)
        assert Counter((t["symbol"], t["exchange"], t["event_tm"], t["event_seq_nb"], t["trade_pr"],
                        t["arrival_tm"]) for t in trades) == Counter(
            (k[2], k[3], k[4], k[5], r.values["trade_pr"], r.values["arrival_tm"])  # type: ignore[index]
            for k, r in best.items() if k[1] == "T")
        assert len(_partition(store, "quote", day)) == sum(1 for k in best if k[1] == "Q")
        closes = {(c["symbol"], c["exchange"]): (c["event_tm"], c["event_seq_nb"], c["trade_pr"])
                  for c in _partition(store, "trade_close", day)}
        assert closes == {(t["symbol"], t["exchange"]): max((u["event_tm"], u["event_seq_nb"], u["trade_pr"])
                                                           for u in trades if u["symbol"] == t["symbol"]
                                                           and u["exchange"] == t["exchange"]) for t in trades}
        quarantine = _partition(store, "quarantine", day)
        assert Counter(q["reason"] for q in quarantine) == Counter(r.reason for r in records if r.reason)
        # the tracker's row of the ingest step keeps its counts (status --steps shows them in words)
        rows = json.loads(subprocess.run([sys.executable, "run_pipeline.py", "status", "--steps", "--json",
                                          "--config", str(cfg)], cwd=repo_root, capture_output=True, text=True,
                                         check=True).stdout)
        (row,) = [r for r in rows if r["job_id"] == f"preprocess.ingest_{day}"]
        figures = json.loads(row["message"])["figures"]
        bad_by_reason = Counter(r.reason for r in records if r.reason)
        assert figures["lines_read"] == len(records) == figures["valid"] + figures["bad"]
        assert figures["bad"] == sum(bad_by_reason.values()) and figures["bad_by_reason"] == dict(bad_by_reason)
        for dataset in ("trade", "quote", "trade_close", "quarantine"):
            assert _conforms(repo_root / "schemas" / "data", store, dataset, day) > 0, dataset
    # rerun the first date with a stricter threshold: it fails and leaves the good outputs in place
    before = len(_partition(store, "trade", DAYS[0]))
    failed = _run(repo_root, cfg, "--date", DAYS[0], "--force", "--var", "max_bad_share=0.0")
    assert failed.returncode == 1 and "max_bad_share" in failed.stdout + failed.stderr
    # its report keeps the counts that made it fail (the quarantine of that date is not replaced)
    (report,) = [r for r in (store / "_reports" / "preprocess" / DAYS[0]).glob("*/report.json")
                 if json.loads(r.read_text())["status"] == "failed"]
    ingest = json.loads(report.read_text())["steps"][0]
    assert ingest["status"] == "failed" and ingest["metrics"]["bad"] == sum(
        ingest["metrics"]["bad_by_reason"].values()) > 0
    assert ingest["metrics"]["lines_read"] == ingest["metrics"]["valid"] + ingest["metrics"]["bad"]
    assert len(_partition(store, "trade", DAYS[0])) == before
    assert len(_partition(store, "trade", DAYS[1])) > 0
