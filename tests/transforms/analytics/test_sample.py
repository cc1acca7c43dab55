"""The real public sample: preprocess through the CLI, then analyze (in this session's Spark); the figures the
issue publishes for 2020-08-06, and the same figures recomputed with pandas from the clean trade/ and quote/
datasets."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from engine.config import load_config
from tests.in_process import run_pipeline

ROOT = Path(__file__).resolve().parents[3]
DAY = "2020-08-06"
PUBLISHED_CLOSES = {("SYMA", "NASDAQ"): 77.2468, ("SYMA", "NYSE"): 77.7861, ("SYMB", "NASDAQ"): 35.5373,
                    ("SYMB", "NYSE"): 33.9563, ("SYMC", "NASDAQ"): 158.0203, ("SYMC", "NYSE"): 160.6195}


def _cli(*args: str, cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKFLOW_")}
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    proc = subprocess.run([sys.executable, str(ROOT / "run_pipeline.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{args[0]}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    # --quiet on clean data: nothing at all on stderr (not even the JVM's start-up notice, see engine.jvm_stderr)
    assert proc.stderr == ""


@pytest.fixture(scope="module")
def warehouse(shared_sample, tmp_path_factory, spark) -> Path:
    tmp = tmp_path_factory.mktemp("analyze_sample")
    ini = tmp / "tickflow.ini"
    ini.write_text(f"[storage]\nroot = {tmp / 'warehouse'}\nraw_root = {shared_sample}\n\n"
                   f"[tracker]\nsqlite_path = {tmp / 'tracker.sqlite'}\n\n[spark]\nmaster = local[2]\n")
    _cli("run", str(ROOT / "pipelines" / "preprocess.yaml"), "--config", str(ini), "--quiet", cwd=tmp)
    # analyze through the CLI is what tests/e2e and test_analyze_pipeline do; here only its outputs matter
    config = load_config(ini, env={})
    [record] = run_pipeline(ROOT / "pipelines" / "analyze.yaml", config, [dt.date.fromisoformat(DAY)], spark)
    assert record.status == "success", record.message
    return tmp / "warehouse"


def _read(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path)
    return df.assign(trade_dt=df["trade_dt"].astype(str))  # a partition column reads as categorical


def _day(df: pd.DataFrame, day: str) -> pd.DataFrame:
    return df[df["trade_dt"] == day]


@pytest.mark.slow
def test_prior_close_on_the_sample(warehouse):
    got = _day(_read(warehouse / "analytics" / "prior_close"), DAY)
    closes = {(r.symbol, r.exchange): r.close_pr for r in got.itertuples()}
    assert {k: round(v, 4) for k, v in closes.items()} == PUBLISHED_CLOSES
    trades = _read(warehouse / "trade")
    trades = trades[trades["trade_dt"] < DAY]
    last_day = trades[trades["trade_dt"] == trades.groupby(["symbol", "exchange"])["trade_dt"].transform("max")]
    last = last_day.sort_values(["event_tm", "event_seq_nb"]).groupby(["symbol", "exchange"]).tail(1)
    assert {(r.symbol, r.exchange): r.trade_pr for r in last.itertuples()} == closes


@pytest.mark.slow
def test_quotes_before_the_first_trade_on_the_sample(warehouse):
    enriched = _day(_read(warehouse / "analytics" / "quote_enriched"), DAY)
    assert int(enriched["last_trade_pr"].isna().sum()) == 54
    trades = _day(_read(warehouse / "trade"), DAY)
    first = trades.groupby(["symbol", "exchange"])["event_tm"].min().rename("first_tm").reset_index()
    quotes = _day(_read(warehouse / "quote"), DAY).merge(first, on=["symbol", "exchange"], how="left")
    before = quotes["first_tm"].isna() | (quotes["event_tm"] < quotes["first_tm"])
    assert int(before.sum()) == 54 and len(enriched) == len(quotes)
