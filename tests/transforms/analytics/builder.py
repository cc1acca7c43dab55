"""Generated trade and quote data for the analytics tests, as plain Python rows and as Spark DataFrames.

Three trading days with a weekend between the second and third, four symbols on two exchanges, dense
30-minute windows, trades exactly `window` apart, equal timestamps (within and across exchanges, and between a
trade and a quote), quotes before the day's first trade, a symbol that does not trade on one day (it still
quotes) and a (symbol, exchange) that skips a day while the symbol trades elsewhere.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import (
    DateType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
)

DATES = [dt.date(2020, 8, 6), dt.date(2020, 8, 7), dt.date(2020, 8, 10)]  # Thu, Fri, (weekend), Mon
SYMBOLS = ["SYMA", "SYMB", "SYMC", "SYMD"]
EXCHANGES = ["NASDAQ", "NYSE"]
NO_TRADES = {(DATES[1], "SYMD")}  # quotes only that day
NO_TRADES_ON_EXCHANGE = {(DATES[1], "SYMC", "NASDAQ")}

TRADE_FIELDS = ["trade_dt", "symbol", "exchange", "event_tm", "event_seq_nb", "arrival_tm", "trade_pr",
                "trade_size", "execution_id", "source_file"]
QUOTE_FIELDS = ["trade_dt", "symbol", "exchange", "event_tm", "event_seq_nb", "arrival_tm", "bid_pr",
                "bid_size", "ask_pr", "ask_size", "source_file"]
_TYPES = {"trade_dt": DateType(), "symbol": StringType(), "exchange": StringType(),
          "event_tm": TimestampNTZType(), "event_seq_nb": LongType(), "arrival_tm": TimestampNTZType(),
          "trade_pr": DoubleType(), "trade_size": LongType(), "execution_id": StringType(),
          "source_file": StringType(), "bid_pr": DoubleType(), "bid_size": LongType(), "ask_pr": DoubleType(),
          "ask_size": LongType()}
TRADE_SCHEMA = StructType([StructField(f, _TYPES[f], False) for f in TRADE_FIELDS])
QUOTE_SCHEMA = StructType([StructField(f, _TYPES[f], False) for f in QUOTE_FIELDS])


@dataclass
class Market:
    trades: list[dict] = field(default_factory=list)
    quotes: list[dict] = field(default_factory=list)

    def trades_on(self, date: dt.date) -> list[dict]:
        return [t for t in self.trades if t["trade_dt"] == date]

    def quotes_on(self, date: dt.date) -> list[dict]:
        return [q for q in self.quotes if q["trade_dt"] == date]


def _ms(rng: random.Random, start: dt.datetime, span_s: int) -> dt.datetime:
    return start + dt.timedelta(milliseconds=rng.randrange(span_s * 1000))


def _event_times(rng: random.Random, day: dt.date, n: int) -> list[dt.datetime]:
    """Trade times: a dense cluster, an even spread, pairs exactly 30 minutes apart and repeated times."""
    open_tm = dt.datetime.combine(day, dt.time(9, 30))
    times = [_ms(rng, open_tm + dt.timedelta(minutes=40), 30 * 60) for _ in range(n // 2)]  # dense
    times += [_ms(rng, open_tm, 2 * 3600) for _ in range(n // 3)]
    base = _ms(rng, open_tm + dt.timedelta(minutes=5), 600)
    times += [base, base + dt.timedelta(minutes=30), base + dt.timedelta(minutes=60)]  # window edges
    times += rng.sample(times, 4)  # equal timestamps within the key
    times.append(dt.datetime.combine(day, dt.time(10, 0)))  # shared by every key: cross-exchange ties
    return sorted(times)


def build_market(seed: int = 7) -> Market:
    rng = random.Random(seed)
    market = Market()
    price = {(s, e): 20.0 + 30.0 * i + 3.0 * j + rng.random() for i, s in enumerate(SYMBOLS)
             for j, e in enumerate(EXCHANGES)}
    for day in DATES:
        arrival = dt.datetime.combine(day, dt.time(17, 0))
        for exchange in EXCHANGES:
            events: list[tuple[dt.datetime, int, str, dict]] = []
            for symbol in SYMBOLS:
                trade_times: list[dt.datetime] = []
                if (day, symbol) not in NO_TRADES and (day, symbol, exchange) not in NO_TRADES_ON_EXCHANGE:
                    trade_times = _event_times(rng, day, rng.randrange(60, 110))
                for tm in trade_times:
                    price[(symbol, exchange)] *= 1.0 + rng.gauss(0.0, 0.002)
                    events.append((tm, 0, symbol, {"trade_pr": price[(symbol, exchange)],
                                                   "trade_size": rng.randrange(1, 50) * 100}))
                quote_times = [_ms(rng, dt.datetime.combine(day, dt.time(9, 0)), 25 * 60) for _ in range(3)]
                quote_times += [_ms(rng, dt.datetime.combine(day, dt.time(9, 30)), 2 * 3600) for _ in range(40)]
                quote_times += rng.sample(trade_times, min(5, len(trade_times)))  # equal to a trade's time
                for tm in quote_times:
                    mid = price[(symbol, exchange)] * (1.0 + rng.gauss(0.0, 0.001))
                    half = mid * rng.uniform(0.0001, 0.002)
                    events.append((tm, 1, symbol, {"bid_pr": mid - half, "bid_size": rng.randrange(1, 9) * 100,
                                                   "ask_pr": mid + half, "ask_size": rng.randrange(1, 9) * 100}))
            events.sort(key=lambda e: (e[0], e[1], e[2]))
            for seq, (tm, kind, symbol, values) in enumerate(events, start=1):
                row = {"trade_dt": day, "symbol": symbol, "exchange": exchange, "event_tm": tm,
                       "event_seq_nb": seq, "arrival_tm": arrival, **values,
                       "source_file": f"csv/{day}/{exchange}/part-0.txt"}
                if kind == 0:
                    row["execution_id"] = f"{exchange[:2]}{day:%m%d}{seq}"
                    market.trades.append(row)
                else:
                    market.quotes.append(row)
    return market


def trades_df(spark: SparkSession, rows: list[dict]) -> DataFrame:
    return spark.createDataFrame([tuple(r[f] for f in TRADE_FIELDS) for r in rows], TRADE_SCHEMA)


def quotes_df(spark: SparkSession, rows: list[dict]) -> DataFrame:
    return spark.createDataFrame([tuple(r[f] for f in QUOTE_FIELDS) for r in rows], QUOTE_SCHEMA)
