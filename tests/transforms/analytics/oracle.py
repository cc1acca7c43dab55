"""Independent plain-Python implementations of the analytics semantics (DESIGN.md Data 3-6, issue 5).

Written from the definitions, not from the Spark code: loops and sorts over dicts, no shared helpers.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict


def group(rows: list[dict], keys: tuple[str, ...]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        out[tuple(r[k] for k in keys)].append(r)
    return out


def moving_average(trades: list[dict], window: dt.timedelta) -> dict[tuple, float]:
    """(trade_dt, symbol, exchange, event_tm, event_seq_nb) -> mean price over [t - window, t]."""
    out = {}
    for key, rows in group(trades, ("trade_dt", "symbol", "exchange")).items():
        for r in rows:
            inside = [o["trade_pr"] for o in rows if r["event_tm"] - window <= o["event_tm"] <= r["event_tm"]]
            out[(*key, r["event_tm"], r["event_seq_nb"])] = sum(inside) / len(inside)
    return out


def prior_close(trades: list[dict], date: dt.date, keys: tuple[str, ...]) -> dict[tuple, tuple[float, dt.date]]:
    """key -> (close price, close date): last trade on the key's latest trading date before `date`."""
    out = {}
    for key, rows in group([t for t in trades if t["trade_dt"] < date], keys).items():
        last_day = max(r["trade_dt"] for r in rows)
        day_rows = [r for r in rows if r["trade_dt"] == last_day]
        last = max(day_rows, key=lambda r: (r["event_tm"], r["exchange"], r["event_seq_nb"]))
        out[key] = (last["trade_pr"], last_day)
    return out


def quote_enrichment(quotes: list[dict], trades: list[dict], date: dt.date, window: dt.timedelta,
                     history: list[dict]) -> dict[tuple, dict]:
    ma = moving_average(trades, window)
    closes = prior_close(history, date, ("symbol", "exchange"))
    by_key = group(trades, ("trade_dt", "symbol", "exchange"))
    out = {}
    for q in quotes:
        key = (q["trade_dt"], q["symbol"], q["exchange"])
        earlier = [t for t in by_key.get(key, []) if t["event_tm"] <= q["event_tm"]]
        last = max(earlier, key=lambda t: (t["event_tm"], t["event_seq_nb"])) if earlier else None
        close = closes.get((q["symbol"], q["exchange"]), (None, None))[0]
        out[(*key, q["event_tm"], q["event_seq_nb"])] = {
            "bid_pr": q["bid_pr"], "ask_pr": q["ask_pr"], "bid_size": q["bid_size"], "ask_size": q["ask_size"],
            "last_trade_pr": last["trade_pr"] if last else None,
            "last_mov_avg_pr": ma[(*key, last["event_tm"], last["event_seq_nb"])] if last else None,
            "close_pr": close,
            "bid_pr_mv": q["bid_pr"] - close if close is not None else None,
            "ask_pr_mv": q["ask_pr"] - close if close is not None else None,
        }
    return out


def _bar_start(tm: dt.datetime, length: dt.timedelta) -> dt.datetime:
    midnight = dt.datetime.combine(tm.date(), dt.time())
    return midnight + ((tm - midnight) // length) * length


def ohlc(rows: list[dict]) -> dict:
    ordered = sorted(rows, key=lambda r: (r["event_tm"], r["exchange"], r["event_seq_nb"]))
    volume = sum(r["trade_size"] for r in rows)
    return {"open": ordered[0]["trade_pr"], "close": ordered[-1]["trade_pr"],
            "high": max(r["trade_pr"] for r in rows), "low": min(r["trade_pr"] for r in rows),
            "volume": volume, "trade_count": len(rows),
            "vwap": sum(r["trade_pr"] * r["trade_size"] for r in rows) / volume}


def bars(trades: list[dict], length: dt.timedelta) -> dict[tuple, dict]:
    """(trade_dt, symbol, bar_start) -> ohlc of the trades in [bar_start, bar_start + length)."""
    buckets: dict[tuple, list[dict]] = defaultdict(list)
    for t in trades:
        buckets[(t["trade_dt"], t["symbol"], _bar_start(t["event_tm"], length))].append(t)
    return {k: ohlc(v) for k, v in buckets.items()}


def daily_metrics(trades: list[dict], quotes: list[dict], date: dt.date, history: list[dict]) -> dict[tuple, dict]:
    closes = prior_close(history, date, ("symbol",))
    minute = bars(trades, dt.timedelta(minutes=1))
    out: dict[tuple, dict] = {}
    for (day, symbol), rows in group(trades, ("trade_dt", "symbol")).items():
        row = ohlc(rows)
        bar_closes = [v["close"] for k, v in sorted(minute.items()) if k[:2] == (day, symbol)]
        rets = [math.log(b / a) for a, b in zip(bar_closes, bar_closes[1:], strict=False)]
        prior = closes.get((symbol,), (None, None))[0]
        row.update(realized_vol=math.sqrt(sum(r * r for r in rets)), prior_close=prior,
                   bar_count=len(bar_closes), quote_count=0, mean_spread=None, mean_spread_bps=None,
                   **{"return": row["close"] / prior - 1 if prior is not None else None})
        out[(day, symbol)] = row
    for (day, symbol), rows in group(quotes, ("trade_dt", "symbol")).items():
        row = out.setdefault((day, symbol), {
            "open": None, "high": None, "low": None, "close": None, "volume": 0, "trade_count": 0,
            "vwap": None, "realized_vol": None, "prior_close": closes.get((symbol,), (None, None))[0],
            "bar_count": 0, "return": None})
        spreads = [q["ask_pr"] - q["bid_pr"] for q in rows]
        bps = [10000 * (q["ask_pr"] - q["bid_pr"]) / ((q["ask_pr"] + q["bid_pr"]) / 2) for q in rows]
        row.update(quote_count=len(rows), mean_spread=sum(spreads) / len(rows), mean_spread_bps=sum(bps) / len(rows))
    return out


def exchange_share(trades: list[dict]) -> dict[tuple, dict]:
    sym_volume: dict[tuple, int] = defaultdict(int)
    for t in trades:
        sym_volume[(t["trade_dt"], t["symbol"])] += t["trade_size"]
    out = {}
    for key, rows in group(trades, ("trade_dt", "symbol", "exchange")).items():
        volume = sum(r["trade_size"] for r in rows)
        total = sym_volume[key[:2]]
        out[key] = {"volume": volume, "trade_count": len(rows), "symbol_volume": total, "share": volume / total}
    return out


def market_summary(daily: dict[tuple, dict], top_n: int = 5) -> dict[dt.date, dict]:
    out = {}
    for day in sorted({k[0] for k in daily}):
        rows = [(k[1], v) for k, v in daily.items() if k[0] == day]
        with_ret = [(s, v["return"]) for s, v in rows if v["return"] is not None]
        gainers = sorted([x for x in with_ret if x[1] > 0], key=lambda x: (-x[1], x[0]))[:top_n]
        losers = sorted([x for x in with_ret if x[1] < 0], key=lambda x: (x[1], x[0]))[:top_n]
        out[day] = {"symbol_count": sum(1 for _, v in rows if v["trade_count"] > 0),
                    "advancers": sum(1 for _, r in with_ret if r > 0),
                    "decliners": sum(1 for _, r in with_ret if r < 0),
                    "total_volume": sum(v["volume"] for _, v in rows),
                    "total_trades": sum(v["trade_count"] for _, v in rows),
                    "top_gainers": gainers, "top_losers": losers}
    return out
