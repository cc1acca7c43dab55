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
OPEN = dt.datetime.combine(DAY, dt.time(9, 30))
# Quote counts per symbol: the top four by count, a tie for fourth place broken by symbol name (SYMD, not SYME).
COUNTS = {"SYMA": 60, "SYMB": 45, "SYMC": 45, "SYMD": 30, "SYME": 30, "SYMF": 12}


@pytest.fixture(scope="module")
def steps():
    return load_spec(ROOT / "pipelines" / "analyze.yaml", date=DAY).steps


def _quotes() -> list[dict]:
    rng = random.Random(11)
    rows = []
    for symbol, n in COUNTS.items():
        for i in range(n):
            bid = round(rng.uniform(20, 30), 4)
            rows.append({"trade_dt": DAY, "symbol": symbol, "exchange": rng.choice(["NYSE", "NASDAQ"]),
                         "event_tm": OPEN + dt.timedelta(milliseconds=rng.randrange(0, 47 * 60_000)),
                         "event_seq_nb": i, "arrival_tm": OPEN, "bid_pr": bid, "bid_size": 100,
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


def test_chart_spread_top_symbols_five_minute_means(spark, steps):
    rows = _quotes()
    # the top symbols come from daily_metrics' quote counts (one row per symbol of the day)
    daily = spark.createDataFrame([(DAY, s, n) for s, n in Counter(r["symbol"] for r in rows).items()],
                                  "trade_dt date, symbol string, quote_count bigint")
    got = [(r["symbol"], r["minute"], r["spread_bps"])
           for r in run_sql(spark, steps["chart_spread"], {"quotes": quotes_df(spark, rows),
                                                            "daily": daily}).collect()]
    expected = _expected_spread(rows)
    assert {s for s, _m, _v in got} == {"SYMA", "SYMB", "SYMC", "SYMD"}
    assert [(s, m) for s, m, _v in got] == [(s, m) for s, m, _v in expected]
    assert [v for _s, _m, v in got] == pytest.approx([v for _s, _m, v in expected], rel=1e-9)


# Trade volume per (symbol, exchange). Totals: SYMA 900, SYMB 700, SYMC 500, SYMD 400, SYME 400, SYMF 100, so SYMD
# takes fourth place from SYME by name; SYMC's two exchanges tie (NASDAQ wins by name), SYMB trades most on NYSE.
VOLUMES = {("SYMA", "NASDAQ"): 600, ("SYMA", "NYSE"): 300, ("SYMB", "NASDAQ"): 200, ("SYMB", "NYSE"): 500,
           ("SYMC", "NASDAQ"): 250, ("SYMC", "NYSE"): 250, ("SYMD", "NYSE"): 400, ("SYME", "NASDAQ"): 400,
           ("SYMF", "NYSE"): 100}


def _ma_trades() -> list[tuple]:
    """Trades in lots of 50 spread over 20 minutes, several a minute, some sharing a time (then the higher
    sequence number is the later trade); the moving average is an arbitrary input column here."""
    rng = random.Random(5)
    rows = []
    for (symbol, exchange), volume in VOLUMES.items():
        tm = OPEN
        for seq in range(volume // 50):
            if seq == 0 or rng.random() > 0.3:  # else: the same time as the previous trade
                tm += dt.timedelta(milliseconds=rng.randrange(1, 200_000))
            rows.append((DAY, symbol, exchange, tm, seq, round(rng.uniform(10, 11), 6), 50,
                         round(rng.uniform(10, 11), 6)))
    return rows


def _shares(trades: list[tuple]) -> list[tuple]:
    volume: Counter = Counter()
    for _d, symbol, exchange, _tm, _seq, _pr, size, _ma in trades:
        volume[(symbol, exchange)] += size
    per_symbol: Counter = Counter()
    for (symbol, _exchange), v in volume.items():
        per_symbol[symbol] += v
    return [(DAY, s, e, v, per_symbol[s], v / per_symbol[s]) for (s, e), v in volume.items()]


def _expected_prices(trades: list[tuple]) -> list[tuple]:
    totals: Counter = Counter()
    for (symbol, _exchange), v in VOLUMES.items():
        totals[symbol] += v
    top = sorted(totals, key=lambda s: (-totals[s], s))[:4]
    out = []
    for symbol in top:
        exchange = min((e for s, e in VOLUMES if s == symbol), key=lambda e: (-VOLUMES[(symbol, e)], e))
        minutes: dict[dt.datetime, list[tuple]] = defaultdict(list)
        for t in trades:
            if t[1] == symbol and t[2] == exchange:
                minutes[t[3].replace(second=0, microsecond=0)].append(t)
        notional = size = 0.0
        for minute in sorted(minutes):
            last = max(minutes[minute], key=lambda t: (t[3], t[4]))
            notional += sum(t[5] * t[6] for t in minutes[minute])
            size += sum(t[6] for t in minutes[minute])
            out.append((f"{symbol} on {exchange}", minute, last[5], last[7], notional / size))
    return out


def test_chart_prices_last_price_moving_average_and_day_vwap_per_minute(spark, steps):
    trades = _ma_trades()
    ma = spark.createDataFrame(trades, "trade_dt date, symbol string, exchange string, event_tm timestamp_ntz, "
                                       "event_seq_nb bigint, trade_pr double, trade_size bigint, mov_avg_pr double")
    shares = spark.createDataFrame(_shares(trades), "trade_dt date, symbol string, exchange string, volume bigint, "
                                                    "symbol_volume bigint, share double")
    got = [tuple(r) for r in run_sql(spark, steps["chart_prices"], {"ma_trades": ma, "shares": shares}).select(
        "symbol", "minute", "last_price", "moving_avg", "day_vwap").collect()]
    expected = _expected_prices(trades)
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert list(dict.fromkeys(g[0] for g in got)) == ["SYMA on NASDAQ", "SYMB on NYSE", "SYMC on NASDAQ",
                                                       "SYMD on NYSE"]
    for g, e in zip(got, expected, strict=True):
        assert g[2:4] == e[2:4]  # picked, not computed: exact
        assert g[4] == pytest.approx(e[4], rel=1e-9)


def test_chart_volume_top_fifteen_symbols_by_volume(spark, steps):
    # 18 symbols whose totals are not in name order; S06 and S08 tie for the fifteenth place (S06 wins by name)
    nasdaq = [50, 900, 40, 300, 700, 650, 30, 300, 20, 550, 500, 450, 400, 350, 250, 200, 150, 100]
    volumes = {(f"S{i:02d}", e): v + (10 * i if e == "NYSE" else 0) for i, v in enumerate(nasdaq)
               for e in ("NASDAQ", "NYSE")}
    totals: Counter = Counter()
    for (s, _e), v in volumes.items():
        totals[s] += v
    rows = [(DAY, s, e, v, totals[s], v / totals[s]) for (s, e), v in volumes.items()]
    shares = spark.createDataFrame(rows, "trade_dt date, symbol string, exchange string, volume bigint, "
                                         "symbol_volume bigint, share double")
    got = [tuple(r) for r in run_sql(spark, steps["chart_volume"], {"shares": shares}).collect()]
    top = sorted(totals, key=lambda s: (-totals[s], s))[:15]
    assert totals["S06"] == totals["S08"] and "S06" in top and "S08" not in top  # the tie decides the last place
    expected = [(s, e, volumes[(s, e)]) for s in top for e in ("NASDAQ", "NYSE")]
    assert got == expected
