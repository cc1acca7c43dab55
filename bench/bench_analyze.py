"""Benchmark of the analyze workflow: events/s, wall seconds and peak RSS of the whole process tree of
`run_pipeline.py pipelines/analyze.yaml --date D` for 1, 5 and 10 million events (trades + quotes) a day,
and the shuffles (Exchange nodes) in the physical plan of the quote enrichment.

Usage: .venv/bin/python bench/bench_analyze.py [--sizes 1,5,10] [--workdir /tmp/tickflow_bench_analyze]
Generated datasets are kept in the workdir and reused by later runs. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import run_measured  # noqa: E402

DAY = dt.date(2020, 8, 10)  # a Monday: the prior close comes from Friday's trades
PREV = dt.date(2020, 8, 7)
SYMBOLS = 500
EXCHANGES = ["NYSE", "NASDAQ", "ARCA"]
TRADE_SHARE = 0.25  # a quarter of the events are trades, the rest quotes


def generate(spark, root: Path, events: int, day: dt.date, seed: int) -> None:
    """Clean trade/ and quote/ partitions for one day, built with Spark column functions (no Python rows)."""
    from pyspark.sql import functions as F

    def common(n: int, offset: int, s: int):
        df = spark.range(n).withColumn("id", F.col("id") + offset)
        sym_no = F.pmod(F.xxhash64("id", F.lit(s)), F.lit(SYMBOLS))
        exch = F.element_at(F.array(*[F.lit(e) for e in EXCHANGES]),
                            (F.pmod(F.xxhash64(F.lit(s + 1), "id"), F.lit(len(EXCHANGES))) + 1).cast("int"))
        ms = (F.rand(s) * 23_400_000).cast("long")
        tm = F.expr(f"timestampadd(MILLISECOND, _ms, TIMESTAMP_NTZ'{day} 09:30:00')")
        base = F.lit(10.0) + sym_no * F.lit(0.97)
        df = (df.withColumn("_ms", ms)
              .withColumn("trade_dt", F.lit(day))
              .withColumn("symbol", F.format_string("S%04d", sym_no))
              .withColumn("exchange", exch)
              .withColumn("event_tm", tm)
              .withColumn("event_seq_nb", F.col("id"))
              .withColumn("arrival_tm", F.expr(f"TIMESTAMP_NTZ'{day} 17:00:00'"))
              .withColumn("_mid", base * (1 + 0.02 * F.sin(F.col("_ms") / 3.0e6 + sym_no)
                                          + 0.0005 * F.randn(s + 2)))
              .withColumn("source_file", F.format_string("csv/%s/%s/part-0.txt", F.lit(str(day)), exch)))
        return df

    def lots(s: int, most: int):
        return ((F.floor(F.rand(s) * most) + 1) * 100).cast("long")

    n_trades = int(events * TRADE_SHARE)
    trades = common(n_trades, 0, seed).select(
        "trade_dt", "symbol", "exchange", "event_tm", "event_seq_nb", "arrival_tm",
        F.col("_mid").alias("trade_pr"), lots(seed + 3, 50).alias("trade_size"),
        F.format_string("X%d", F.col("id")).alias("execution_id"), "source_file")
    half = F.col("_mid") * (0.0001 + 0.001 * F.rand(seed + 4))
    quotes = common(events - n_trades, n_trades, seed + 10).select(
        "trade_dt", "symbol", "exchange", "event_tm", "event_seq_nb", "arrival_tm",
        (F.col("_mid") - half).alias("bid_pr"), lots(seed + 5, 9).alias("bid_size"),
        (F.col("_mid") + half).alias("ask_pr"), lots(seed + 6, 9).alias("ask_size"),
        "source_file")
    from transforms.eod_load import day_closes

    for name, df in (("trade", trades), ("quote", quotes), ("trade_close", day_closes(trades))):
        df.write.mode("overwrite").partitionBy("trade_dt").option("partitionOverwriteMode", "dynamic") \
            .parquet(str(root / name))


def prepare(spark, work: Path, millions: int) -> Path:
    """The storage root of one size, generated once (Friday history and the Monday benchmarked)."""
    root = work / f"{millions}m" / "warehouse"
    done = root / "_bench_generated_with_closes"  # trade_close too (older workdirs are regenerated)
    if not done.exists():
        for i, day in enumerate((PREV, DAY)):
            generate(spark, root, millions * 1_000_000, day, seed=17 + 31 * i)
        done.write_text("ok\n")
    return root


def write_config(work: Path, millions: int, root: Path) -> Path:
    from engine.config import load_config
    from engine.tracker.factory import open_tracker

    ini = work / f"{millions}m" / "tickflow.ini"
    tracker_db = work / f"{millions}m" / "tracker.sqlite"
    ini.write_text(f"[storage]\nroot = {root}\nraw_root = {work / 'raw'}\n\n"
                   f"[tracker]\nsqlite_path = {tracker_db}\n\n[spark]\nmaster = local[*]\n")
    with open_tracker(load_config(ini, env={})) as tracker:
        tracker.set_status(f"preprocess_{DAY}", "success")
    return ini


def _exchanges(df) -> list[str]:
    plan = df._jdf.queryExecution().executedPlan().toString()
    return [re.sub(r"\s+", " ", m.group(0)).strip()[:110] for m in re.finditer(r"(Broadcast)?Exchange [^\n]*", plan)]


def enrichment_exchanges(spark, root: Path) -> dict[str, list[str]]:
    """Exchange nodes of the quote enrichment's physical plan: the step alone (its inputs as the pipeline
    hands them over: quotes, the written moving averages, the prior closes) and the whole chain from the
    day's reads (moving average and prior close included)."""
    import logging

    from engine.context import TransformContext
    from transforms.analytics.moving_average import moving_average
    from transforms.analytics.prior_close import prior_close
    from transforms.analytics.quote_enrichment import quote_enrichment

    ctx = TransformContext(spark=spark, date=DAY, step="bench", log=logging.getLogger("bench"),
                           _dataset_reader=lambda rel, *a: None, _raw_reader=lambda rel: None)
    trades = spark.read.parquet(str(root / "trade")).where(f"trade_dt = DATE'{DAY}'")
    quotes = spark.read.parquet(str(root / "quote")).where(f"trade_dt = DATE'{DAY}'")
    history = spark.read.parquet(str(root / "trade_close")).where(f"trade_dt < DATE'{DAY}'")
    params = {"by": ["trade_dt", "symbol", "exchange"], "time_col": "event_tm", "seq_col": "event_seq_nb"}
    ma = moving_average(ctx, {"trades": trades}, {"value": "trade_pr", "window": "30 minutes",
                                                  "by": ["trade_dt", "symbol", "exchange"],
                                                  "time_col": "event_tm", "output_col": "mov_avg_pr"})
    closes = prior_close(ctx, {"history": history}, {"by": ["symbol", "exchange"], "value": "trade_pr",
                                                     "order_by": ["event_tm", "exchange", "event_seq_nb"],
                                                     "output_col": "close_pr"})
    chain = quote_enrichment(ctx, {"quotes": quotes, "trades": ma, "closes": closes}, params)
    written_ma = spark.read.parquet(str(root / "analytics" / "trade_moving_avg")).where(f"trade_dt = DATE'{DAY}'")
    written_pc = spark.read.parquet(str(root / "analytics" / "prior_close")).where(f"trade_dt = DATE'{DAY}'")
    step = quote_enrichment(ctx, {"quotes": quotes, "trades": written_ma, "closes": written_pc}, params)
    return {"the step alone": _exchanges(step), "the chain from the day's reads": _exchanges(chain)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,5,10", help="millions of events per day, comma separated")
    ap.add_argument("--workdir", default="/tmp/tickflow_bench_analyze")
    args = ap.parse_args(argv)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    from engine.spark import build_session

    spark = build_session("local[*]", app_name="bench-analyze-setup")
    roots = {m: prepare(spark, work, m) for m in sizes}
    spark.stop()  # the measured pipeline runs alone

    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKFLOW_")}
    results = []
    for m in sizes:
        ini = write_config(work, m, roots[m])
        cmd = [sys.executable, str(ROOT / "run_pipeline.py"), "run", str(ROOT / "pipelines" / "analyze.yaml"),
               "--date", str(DAY), "--config", str(ini), "--force", "--quiet"]
        res = run_measured(cmd, env=env, cwd=str(work))
        if res.returncode != 0:
            print(f"{m}M events: analyze failed with exit {res.returncode}\n{res.output_tail}", file=sys.stderr)
            return 1
        events = m * 1_000_000
        results.append((m, events / res.wall_s, res.wall_s, res.peak_rss_bytes / 2**30))
        print(f"{m:>3}M events/day: {events / res.wall_s:>10,.0f} events/s  {res.wall_s:7.1f} s wall  "
              f"peak RSS {res.peak_rss_bytes / 2**30:5.2f} GiB", flush=True)

    spark = build_session("local[*]", app_name="bench-analyze-plan")
    plans = enrichment_exchanges(spark, roots[sizes[0]])
    spark.stop()
    for what, exchanges in plans.items():
        shuffles = [e for e in exchanges if not e.startswith("Broadcast")]
        print(f"quote enrichment, {what}: {len(shuffles)} shuffle(s), {len(exchanges) - len(shuffles)} broadcast(s)")
        for e in exchanges:
            print(f"  {e}")
    print("\n| events/day | events/s | wall s | peak RSS GiB |\n|---|---|---|---|")
    for m, eps, wall, rss in results:
        print(f"| {m}M | {eps:,.0f} | {wall:.1f} | {rss:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
