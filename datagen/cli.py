"""``python -m datagen``: command-line front end of datagen.generator.generate."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from datagen.generator import DEFAULT_EXCHANGES, GenConfig, generate


def _exchanges(text: str) -> tuple[tuple[str, str], ...]:
    out = []
    for item in text.split(","):
        name, _, fmt = item.strip().partition(":")
        if not name or fmt not in ("csv", "json"):
            raise argparse.ArgumentTypeError(f"'{item}': expected NAME:csv or NAME:json")
        out.append((name, fmt))
    return tuple(out)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}' is not a YYYY-MM-DD date") from exc


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m datagen",
        description="Generate raw exchange files (<out>/csv|json/<date>/<exchange>/part-NNNNN.txt): random-walk "
                    "trades and quotes with corrections and malformed records, deterministic from --seed.")
    p.add_argument("--out", type=Path, default=Path("raw"), help="output folder, the raw root (default: raw)")
    p.add_argument("--seed", type=int, default=42,
                   help="random seed: the same seed and options give the same bytes (default: 42)")
    p.add_argument("--start", type=_date, default=dt.date(2020, 8, 5),
                   help="first date, YYYY-MM-DD; weekends are skipped (default: 2020-08-05)")
    p.add_argument("--days", type=int, default=2, help="number of trading days (default: 2)")
    p.add_argument("--events", type=int, default=20_000, help="events per day before corrections (default: 20000)")
    p.add_argument("--symbols", type=int, default=8, help="number of symbols: SYMA, SYMB, ... (default: 8)")
    p.add_argument("--exchanges", type=_exchanges, default=DEFAULT_EXCHANGES,
                   help="NAME:csv|json list (default: " + ",".join(f"{n}:{f}" for n, f in DEFAULT_EXCHANGES) + ")")
    p.add_argument("--parts", type=int, default=3, help="part files per exchange and day (default: 3)")
    p.add_argument("--bad-rate", type=float, default=0.002, help="share of malformed records (default: 0.002)")
    p.add_argument("--correction-rate", type=float, default=0.01,
                   help="corrections re-sent in later parts, as a share of events (default: 0.01)")
    p.add_argument("--trade-share", type=float, default=0.35,
                   help="share of trades among events, the rest are quotes (default: 0.35)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = GenConfig(out=args.out, seed=args.seed, start=args.start, days=args.days, events=args.events,
                        symbols=args.symbols, exchanges=args.exchanges, parts=args.parts, bad_rate=args.bad_rate,
                        correction_rate=args.correction_rate, trade_share=args.trade_share)
    except ValueError as exc:
        print(f"datagen: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    stats = generate(cfg)
    secs = time.perf_counter() - t0
    bad = ", ".join(f"{k}={v}" for k, v in sorted(stats.bad_by_kind.items())) or "none"
    print(f"datagen: {stats.lines} lines ({stats.corrections} corrections; bad: {bad}) in {stats.files} files, "
          f"{stats.bytes / 1e6:.1f} MB, days {', '.join(stats.days)} -> {cfg.out} in {secs:.1f} s")
    return 0
