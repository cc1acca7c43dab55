"""A warehouse's first day with trades but no quotes (or quotes but no trades): both workflows run through,
in this session's Spark. An empty partitioned write used to leave no dataset at all, and analyze failed with
"dataset 'quote' does not exist" until some later day had quotes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from engine.config import load_config
from tests.in_process import run_pipeline

ROOT = Path(__file__).resolve().parent.parent.parent
DAY = dt.date(2024, 1, 2)
TRADE = f"{DAY},{DAY} 17:00:00.000,T,X,{DAY} 10:00:00.000,1,NYSE,10.25,100\n"
QUOTE = f"{DAY},{DAY} 17:00:00.000,Q,X,{DAY} 10:00:00.000,2,NYSE,10,100,10.5,200\n"


@pytest.mark.parametrize("lines,empty", [(TRADE, "quote"), (QUOTE, "trade")], ids=["no quotes", "no trades"])
def test_a_first_day_without_quotes_or_without_trades_runs_through_both_workflows(spark, tmp_path, lines, empty):
    raw = tmp_path / "raw" / "csv" / str(DAY) / "NYSE"
    raw.mkdir(parents=True)
    (raw / "part-00000.txt").write_text(lines)
    ini = tmp_path / "tickflow.ini"
    ini.write_text(f"[storage]\nroot = {tmp_path / 'wh'}\nraw_root = {tmp_path / 'raw'}\n\n"
                   f"[tracker]\nsqlite_path = {tmp_path / 't.sqlite'}\n")
    config = load_config(ini, env={})
    for spec in ("preprocess", "analyze"):
        [record] = run_pipeline(ROOT / "pipelines" / f"{spec}.yaml", config, [DAY], spark)
        assert record.status == "success", record.message
    wh = tmp_path / "wh"
    # the empty side is a dataset with the date's partition, of no rows but with its columns
    nothing = pd.read_parquet(wh / empty / f"trade_dt={DAY}")
    assert len(nothing) == 0 and {"symbol", "exchange", "event_tm", "event_seq_nb"} <= set(nothing.columns)
    daily = pd.read_parquet(wh / "analytics" / "daily_metrics" / f"trade_dt={DAY}")
    enriched = pd.read_parquet(wh / "analytics" / "quote_enriched" / f"trade_dt={DAY}")
    summary = pd.read_parquet(wh / "analytics" / "market_summary" / f"trade_dt={DAY}")
    assert len(summary) == 1
    if empty == "quote":
        assert len(enriched) == 0 and list(daily["trade_count"]) == [1] and list(daily["quote_count"]) == [0]
        assert daily["vwap"].tolist() == [10.25] and daily["mean_spread"].isna().all()
    else:
        assert len(enriched) == 1 and enriched["last_trade_pr"].isna().all()
        assert len(pd.read_parquet(wh / "analytics" / "trade_moving_avg" / f"trade_dt={DAY}")) == 0
