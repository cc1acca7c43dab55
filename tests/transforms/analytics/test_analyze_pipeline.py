"""End to end: pipelines/analyze.yaml (plus the two README "Add a metric" steps, from YAML alone) run through
the CLI in a subprocess on generated trade/quote datasets, outputs compared with the plain-Python oracle."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from engine.config import load_config
from engine.tracker.factory import open_tracker
from tests.transforms.analytics import oracle
from tests.transforms.analytics.builder import DATES, build_market, quotes_df, trades_df
from tests.transforms.analytics.helpers import compare, keyed
from transforms.eod_load import day_closes

_, _, MON = DATES
ROOT = Path(__file__).resolve().parents[3]
EXAMPLE_RE = re.compile(r"<!-- example: (\w+) -->\s*```yaml\n(.*?)```", re.DOTALL)
OUTPUTS = ["trade_moving_avg", "prior_close", "quote_enriched", "bars_1m", "daily_metrics", "exchange_share",
           "market_summary", "trade_size_hist", "bars_5m"]


def readme_examples() -> dict[str, str]:
    text = (ROOT / "docs" / "readme" / "analyze.md").read_text()
    return dict(EXAMPLE_RE.findall(text))


def size_bucket(size: int) -> str:
    for upper, label in ((100, "1-99"), (500, "100-499"), (1000, "500-999"), (5000, "1000-4999")):
        if size < upper:
            return label
    return "5000+"


OLD_DAY = MON - dt.timedelta(days=45)  # a key that last traded this long ago still has its prior close


@pytest.fixture(scope="module")
def market():
    market = build_market()
    for n, (symbol, exchange) in enumerate((("SYMA", "IEX"), ("ZOLD", "NYSE"), ("ZOLD", "NYSE"))):
        market.trades.append({"trade_dt": OLD_DAY, "symbol": symbol, "exchange": exchange,
                              "event_tm": dt.datetime.combine(OLD_DAY, dt.time(15, 59, 59)), "event_seq_nb": 10 - n,
                              "arrival_tm": dt.datetime.combine(OLD_DAY, dt.time(17)), "trade_pr": 41.5 + n,
                              "trade_size": 100, "execution_id": f"old{n}", "source_file": "old"})
    return market


@pytest.fixture(scope="module")
def run(spark, market, tmp_path_factory):
    """Write the datasets preprocess would write (three dates), mark preprocess done, analyze Monday."""
    tmp = tmp_path_factory.mktemp("analyze_e2e")
    root = tmp / "warehouse"
    trades_df(spark, market.trades).write.partitionBy("trade_dt").parquet(str(root / "trade"))
    day_closes(trades_df(spark, market.trades)).write.partitionBy("trade_dt").parquet(str(root / "trade_close"))
    quotes_df(spark, market.quotes).write.partitionBy("trade_dt").parquet(str(root / "quote"))
    ini = tmp / "tickflow.ini"
    ini.write_text(f"[storage]\nroot = {root}\nraw_root = {tmp / 'raw'}\n\n"
                   f"[tracker]\nsqlite_path = {tmp / 'tracker.sqlite'}\n\n[spark]\nmaster = local[2]\n")
    with open_tracker(load_config(ini, env={})) as tracker:
        for day in DATES:
            tracker.set_status(f"preprocess_{day}", "success")
    examples = readme_examples()
    assert set(examples) == {"trade_size_hist", "bars_5m"}
    spec = tmp / "analyze.yaml"
    spec.write_text((ROOT / "pipelines" / "analyze.yaml").read_text().rstrip("\n") + "\n\n"
                    + "\n".join(examples.values()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKFLOW_")}
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run_pipeline.py"), "run", str(spec), "--date", str(MON),
         "--config", str(ini), "--quiet"],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return root


def test_every_dated_output_owns_its_date_partition(tmp_path) -> None:
    """A rerun of a date that finds no rows for an output must empty the date's partition, not leave the old
    rows beside the other outputs' new ones: every partitioned output of both workflows (and of the README's
    examples) names the date's partition it replaces."""
    from engine.spec_loader import load_spec

    day = dt.date(2024, 1, 8)
    analyze = (ROOT / "pipelines" / "analyze.yaml").read_text().rstrip("\n") + "\n\n" + \
        "\n".join(readme_examples().values())
    for name, text in (("analyze", analyze), ("preprocess", (ROOT / "pipelines" / "preprocess.yaml").read_text())):
        spec_path = tmp_path / f"{name}.yaml"
        spec_path.write_text(text)
        spec = load_spec(spec_path, date=day)
        outputs = [(step.name, oname, out) for step in spec.steps.values() for oname, out in step.outputs.items()]
        assert outputs, name
        for step, oname, out in outputs:
            assert out.partition_by == ("trade_dt",), (name, step, oname)
            assert list(out.replace_partitions) == [f"trade_dt={day}"], (name, step, oname)


def _read(spark, root: Path, name: str, keys: list[str], date: dt.date):
    df = spark.read.parquet(str(root / "analytics" / name))
    return keyed(df.where(df.trade_dt == date), keys)


@pytest.mark.slow
def test_every_output_is_written_for_the_date_only(spark, run):
    for name in OUTPUTS:
        dates = {r.trade_dt for r in spark.read.parquet(str(run / "analytics" / name)).select("trade_dt")
                 .distinct().collect()}
        assert dates == {MON}, name


@pytest.mark.slow
def test_pipeline_outputs_match_oracle(spark, run, market):
    trades, quotes = market.trades_on(MON), market.quotes_on(MON)
    key = ["trade_dt", "symbol", "exchange", "event_tm", "event_seq_nb"]
    ma = oracle.moving_average(trades, dt.timedelta(minutes=30))
    got = _read(spark, run, "trade_moving_avg", key, MON)
    compare({k: {"m": v["mov_avg_pr"]} for k, v in got.items()}, {k: {"m": v} for k, v in ma.items()}, ["m"])

    closes = oracle.prior_close(market.trades, MON, ("symbol", "exchange"))
    assert closes[("ZOLD", "NYSE")] == (42.5, OLD_DAY) and closes[("SYMA", "IEX")] == (41.5, OLD_DAY)  # seq 9 > 8
    compare(_read(spark, run, "prior_close", ["symbol", "exchange"], MON),
            {k: {"close_pr": v[0], "close_dt": v[1]} for k, v in closes.items()}, ["close_pr", "close_dt"])

    compare(_read(spark, run, "quote_enriched", key, MON),
            oracle.quote_enrichment(quotes, trades, MON, dt.timedelta(minutes=30), market.trades),
            ["last_trade_pr", "last_mov_avg_pr", "close_pr", "bid_pr_mv", "ask_pr_mv"])

    compare(_read(spark, run, "bars_1m", ["trade_dt", "symbol", "bar_start"], MON),
            oracle.bars(trades, dt.timedelta(minutes=1)), ["open", "high", "low", "close", "volume", "vwap"])
    daily = oracle.daily_metrics(trades, quotes, MON, market.trades)
    compare(_read(spark, run, "daily_metrics", ["trade_dt", "symbol"], MON), daily,
            ["open", "close", "volume", "vwap", "prior_close", "return", "realized_vol", "quote_count",
             "mean_spread", "mean_spread_bps"])
    compare(_read(spark, run, "exchange_share", ["trade_dt", "symbol", "exchange"], MON),
            oracle.exchange_share(trades), ["volume", "share"])
    summary = _read(spark, run, "market_summary", ["trade_dt"], MON)[(MON,)]
    expected = oracle.market_summary(daily)[MON]
    assert [(g["symbol"], pytest.approx(g["return"], rel=1e-9)) for g in summary["top_gainers"]] == \
        expected["top_gainers"]
    assert summary["advancers"] == expected["advancers"] and summary["decliners"] == expected["decliners"]


@pytest.mark.slow
def test_readme_metric_examples_produce_expected_rows(spark, run, market):
    for day in (MON,):
        trades = market.trades_on(day)
        hist: dict[tuple, dict] = defaultdict(lambda: {"trade_count": 0, "volume": 0})
        for t in trades:
            cell = hist[(day, t["symbol"], size_bucket(t["trade_size"]))]
            cell["trade_count"] += 1
            cell["volume"] += t["trade_size"]
        compare(_read(spark, run, "trade_size_hist", ["trade_dt", "symbol", "size_bucket"], day), dict(hist),
                ["trade_count", "volume"])
        got = _read(spark, run, "bars_5m", ["trade_dt", "symbol", "bar_start"], day)
        compare(got, oracle.bars(trades, dt.timedelta(minutes=5)),
                ["open", "high", "low", "close", "volume", "trade_count", "vwap"])
        assert all(k[2].minute % 5 == 0 and k[2].second == 0 for k in got)


def test_the_vwap_expectations_fail_an_infinite_vwap(spark) -> None:
    """With a high near the double limit, the bound high * (1 + 1e-12) overflowed to infinity and let an
    infinite vwap (a notional past 1.8e308) pass: the day's bars and metrics were written with vwap = inf."""
    from engine.expectations import evaluate, parse_expectations
    from engine.spec_loader import load_spec

    spec = load_spec(ROOT / "pipelines" / "analyze.yaml", date=dt.date(2024, 1, 8))
    top = 1.7976931348623157e308
    frame = spark.createDataFrame(
        [(10.0, 9.0, 11.0), (1.5e307, 17.0, top), (top, 17.0, top), (float("inf"), 17.0, top)],
        "vwap double, low double, high double")
    for step in ("bars_1m", "daily_metrics"):
        (check,) = [e for e in parse_expectations(list(spec.steps[step].expectations))
                    if e.name == "vwap_within_low_high"]
        (result,) = evaluate(frame, [check])
        assert (result.passed, result.failed) == (3, 1), step
