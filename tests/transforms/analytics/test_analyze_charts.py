"""The report chart steps of pipelines/analyze.yaml (inline SQL) against a plain-Python computation."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from engine.executor import run_sql
from engine.spec_loader import load_spec
from tests.transforms.analytics.builder import quotes_df

ROOT = Path(__file__).resolve().parents[3]
DAY = dt.date(2020, 8, 10)
# Quote counts per symbol: the top four by count, a tie for fourth place broken by symbol name (SYMD, not SYME).
COUNTS = {"SYMA": 60, "SYMB": 45, "SYMC": 45, "SYMD": 30, "SYME": 30, "SYMF": 12}


def _quotes() -> list[dict]:
    rng = random.Random(11)
    open_tm = dt.datetime.combine(DAY, dt.time(9, 30))
    rows = []
    for symbol, n in COUNTS.items():
        for i in range(n):
            bid = round(rng.uniform(20, 30), 4)
            rows.append({"trade_dt": DAY, "symbol": symbol, "exchange": rng.choice(["NYSE", "NASDAQ"]),
                         "event_tm": open_tm + dt.timedelta(milliseconds=rng.randrange(0, 47 * 60_000)),
                         "event_seq_nb": i, "arrival_tm": open_tm, "bid_pr": bid, "bid_size": 100,
                         "ask_pr": bid + round(rng.uniform(0.0, 0.05), 4), "ask_size": 200, "source_file": "q"})
    return rows


def _expected_spread(rows: list[dict]) -> list[tuple[str, dt.datetime, float]]:
    counts = Counter(r["symbol"] for r in rows)
    top = sorted(counts, key=lambda s: (-counts[s], s))[:4]
    cells: dict[tuple[str, dt.datetime], list[float]] = defaultdict(list)
    for r in rows:
        if r["symbol"] in top:
            tm = r["event_tm"]
            start = tm.replace(minute=tm.minute - tm.minute % 5, second=0, microsecond=0)
            cells[(r["symbol"], start)].append(
                10000 * (r["ask_pr"] - r["bid_pr"]) / ((r["ask_pr"] + r["bid_pr"]) / 2))
    return [(s, m, sum(v) / len(v)) for (s, m), v in sorted(cells.items())]


def test_chart_spread_top_symbols_five_minute_means(spark):
    spec = load_spec(ROOT / "pipelines" / "analyze.yaml", date=DAY)
    rows = _quotes()
    got = [(r["symbol"], r["minute"], r["spread_bps"])
           for r in run_sql(spark, spec.steps["chart_spread"], {"quotes": quotes_df(spark, rows)}).collect()]
    expected = _expected_spread(rows)
    assert {s for s, _m, _v in got} == {"SYMA", "SYMB", "SYMC", "SYMD"}
    assert [(s, m) for s, m, _v in got] == [(s, m) for s, m, _v in expected]
    assert [v for _s, _m, v in got] == pytest.approx([v for _s, _m, v in expected], rel=1e-9)
