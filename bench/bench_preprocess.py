"""Benchmark of the preprocess workflow: generate one day of N events, run the pipeline as a subprocess.

    .venv/bin/python bench/bench_preprocess.py --events 1000000 5000000 10000000

Prints per size: events/s, wall seconds (Spark start-up included), peak RSS of the process tree (JVM
included), raw input bytes and written output bytes. Targets (2 cores): 5M events < 35 s, < 4 GB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import dir_bytes, run_measured  # noqa: E402
from datagen import GenConfig, generate  # noqa: E402

DAY = dt.date(2020, 8, 5)


def bench_one(events: int, work: Path, master: str) -> dict[str, float]:
    raw, store = work / f"raw_{events}", work / f"store_{events}"
    stats = generate(GenConfig(out=raw, seed=1, start=DAY, days=1, events=events, symbols=20, parts=4))
    cfg = work / f"cfg_{events}.ini"
    cfg.write_text(f"[storage]\nroot = {store}\nraw_root = {raw}\n[tracker]\nsqlite_path = {work}/t_{events}.db\n"
                   f"[spark]\nmaster = {master}\n")
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
    m = run_measured([sys.executable, str(ROOT / "run_pipeline.py"), "run", str(ROOT / "pipelines/preprocess.yaml"),
                      "--config", str(cfg), "--date", DAY.isoformat(), "--quiet", "--force"], env=env, cwd=str(ROOT))
    if m.returncode != 0:
        raise SystemExit(f"pipeline failed for {events} events (exit {m.returncode}):\n{m.output_tail}")
    out_bytes = sum(dir_bytes(store / d) for d in ("trade", "quote", "quarantine"))
    return {"events": stats.lines, "wall_s": m.wall_s, "events_per_s": stats.lines / m.wall_s,
            "peak_rss_gb": m.peak_rss_bytes / 1e9, "input_mb": stats.bytes / 1e6, "output_mb": out_bytes / 1e6}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, nargs="+", default=[1_000_000, 5_000_000, 10_000_000])
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--workdir", type=Path, default=None, help="keep data here (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_pre_") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = [bench_one(n, work, args.master) for n in args.events]
    print(f"{'events':>10} {'wall s':>8} {'events/s':>10} {'peak RSS GB':>12} {'input MB':>9} {'output MB':>9}")
    for r in rows:
        print(f"{r['events']:>10.0f} {r['wall_s']:>8.1f} {r['events_per_s']:>10.0f} {r['peak_rss_gb']:>12.2f} "
              f"{r['input_mb']:>9.0f} {r['output_mb']:>9.0f}")
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"cost per event at {last['events']:.0f} vs {first['events']:.0f}: "
              f"{(last['wall_s'] / last['events']) / (first['wall_s'] / first['events']):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
