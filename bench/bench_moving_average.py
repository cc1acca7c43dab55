"""Benchmark of the moving_average transform alone: trades/s, seconds and shuffles on dense generated trades.

    .venv/bin/python bench/bench_moving_average.py [--trades 2000000] [--keys 80] [--window "30 minutes"]
    .venv/bin/python bench/bench_moving_average.py --trades 1750000 --rev HEAD   # the committed version

One day of N trades spread uniformly over the 6.5-hour session across `keys` (symbol, exchange) pairs, so a
30-minute window holds about N / keys / 13 trades (~1,900 at the defaults); millisecond times, so some trades
share a time. The trades are generated with Spark's own range()/rand() into a parquet dataset in the workdir
(reused by later runs of the same size), read back and run through the transform, written with format 'noop';
the time is that write's (the read of the parquet input included, Spark start-up and generation excluded).
`--rev` loads the transform's source from a git revision (`--source` from a file) instead of the working tree,
to compare versions.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOURCE = "transforms/analytics/moving_average.py"
DAY = "2020-08-10"
SESSION_MS = 23_400_000  # 09:30 to 16:00
EXCHANGES = ["NYSE", "NASDAQ", "ARCA", "BATS"]


def load_transform(rev: str | None, source: Path | None):
    """The moving_average function of the working tree, of `rev` (`git show rev:path`) or of a source file."""
    if rev is None and source is None:
        from transforms.analytics.moving_average import moving_average

        return moving_average
    with tempfile.TemporaryDirectory(prefix="bench_ma_") as tmp:
        if rev is not None:
            text = subprocess.run(["git", "show", f"{rev}:{SOURCE}"], cwd=ROOT, check=True, capture_output=True,
                                  text=True).stdout
            source = Path(tmp) / "moving_average_rev.py"
            source.write_text(text)
        spec = importlib.util.spec_from_file_location("bench_moving_average_rev", source)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # registers 'moving_average' from this file only: nothing imports the other
    return module.moving_average


def generate(spark, path: Path, trades: int, keys: int, seed: int = 11) -> None:
    """One day of trades: key = (symbol, exchange), uniform times (ms), a slowly drifting price per key."""
    from pyspark.sql import functions as F

    key = F.pmod(F.xxhash64("id", F.lit(seed)), F.lit(keys))
    ms = (F.rand(seed + 1) * SESSION_MS).cast("long")
    exch = F.element_at(F.array(*[F.lit(e) for e in EXCHANGES]), (F.col("_key") % len(EXCHANGES) + 1).cast("int"))
    df = (spark.range(trades)
          .withColumn("_key", key)
          .withColumn("_ms", ms)
          .select(F.lit(DAY).cast("date").alias("trade_dt"),
                  F.format_string("S%03d", (F.col("_key") / len(EXCHANGES)).cast("int")).alias("symbol"),
                  exch.alias("exchange"),
                  F.expr(f"timestampadd(MILLISECOND, _ms, TIMESTAMP_NTZ'{DAY} 09:30:00')").alias("event_tm"),
                  F.col("id").alias("event_seq_nb"),
                  (F.lit(10.0) + F.col("_key") * 12.3
                   + F.sin(F.col("_ms") / 2.0e6 + F.col("_key")) * 0.5 + F.randn(seed + 2) * 0.01).alias("trade_pr"),
                  ((F.floor(F.rand(seed + 3) * 50) + 1) * 100).cast("long").alias("trade_size")))
    df.write.mode("overwrite").parquet(str(path))


def exchanges(df) -> list[str]:
    """Shuffle (not broadcast) Exchange nodes of the physical plan."""
    plan = df._jdf.queryExecution().executedPlan().toString()
    return [re.sub(r"\s+", " ", m.group(0)).strip()[:100] for m in re.finditer(r"(?<!Broadcast)Exchange [^\n]*", plan)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trades", type=int, default=2_000_000)
    ap.add_argument("--keys", type=int, default=80, help="(symbol, exchange) pairs")
    ap.add_argument("--window", default="30 minutes")
    ap.add_argument("--rev", default=None, help="git revision to take the transform from (default: working tree)")
    ap.add_argument("--source", type=Path, default=None, help="a file to take the transform from instead")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs (the best is reported)")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/tickflow_bench_moving_average"))
    args = ap.parse_args(argv)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    from engine.context import TransformContext
    from engine.spark import build_session
    from transforms.analytics.timeutil import parse_duration_us

    moving_average = load_transform(args.rev, args.source)
    spark = build_session(args.master, app_name="bench-moving-average")
    data = args.workdir / f"trades_{args.trades}_{args.keys}"
    if not (data / "_SUCCESS").exists():
        generate(spark, data, args.trades, args.keys)
    trades = spark.read.parquet(str(data))
    ctx = TransformContext(spark=spark, date=None, step="bench", log=logging.getLogger("bench"),
                           _dataset_reader=lambda rel, *a: None, _raw_reader=lambda rel: None)
    params = {"value": "trade_pr", "window": args.window, "by": ["trade_dt", "symbol", "exchange"],
              "time_col": "event_tm", "output_col": "mov_avg_pr"}
    per_window = args.trades / args.keys * parse_duration_us(args.window) / (SESSION_MS * 1000)
    print(f"{args.trades:,} trades, {args.keys} keys, ~{per_window:,.0f} trades per {args.window} window, "
          f"transform from {args.rev or args.source or 'the working tree'}, {args.master}", flush=True)

    out = moving_average(ctx, {"trades": trades}, params)
    shuffles = exchanges(out)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        moving_average(ctx, {"trades": trades}, params).write.format("noop").mode("overwrite").save()
        times.append(time.perf_counter() - start)
        print(f"  run: {times[-1]:.1f} s", flush=True)
    spark.stop()
    best = min(times)
    print(f"{args.trades / best:,.0f} trades/s  {best:.1f} s  {len(shuffles)} Exchange node(s) in the plan")
    for e in shuffles:
        print(f"  {e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
