"""Simulated market events of one trading day, as NumPy arrays (no per-event Python).

Per symbol: one geometric random walk over the session (the consolidated price, so the exchanges of a symbol
trade near one another, as arbitrage keeps them); per (symbol, exchange) pair: event times uniform over the session
and sorted, each event's price that walk at its time plus a small venue deviation, quotes around it (bid < ask),
round-lot sizes, the first events of each pair are quotes (so a quote precedes the day's first trade).
Corrections re-send a record in a later part file with a different price.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SESSION_OPEN_MS = (9 * 60 + 30) * 60 * 1000
SESSION_MS = int(6.5 * 3600 * 1000)
LEADING_QUOTES = 3  # events of each pair that are always quotes, and never corrupted
WALK_STEP_MS = 10_000  # the consolidated walk moves every 10 s; prices between two steps are interpolated


@dataclass(frozen=True)
class DayParams:
    events: int
    symbols: int
    exchanges: int
    parts: int
    trade_share: float
    correction_rate: float
    sigma: float = 0.0003  # log-return std of the consolidated walk per 10-s step (about 1.5% a day)
    venue_sigma: float = 0.0002  # log deviation of one event's price from the consolidated walk


@dataclass(frozen=True)
class DayEvents:
    """Rows of one day (originals first, then corrections); all arrays have the same length."""

    symbol: np.ndarray  # int index into the symbol names
    exchange: np.ndarray  # int index into the exchanges
    time_ms: np.ndarray  # ms since midnight
    seq: np.ndarray  # event_seq_nb, 1.. per pair in time order
    is_trade: np.ndarray
    price: np.ndarray
    size: np.ndarray
    bid: np.ndarray
    bid_size: np.ndarray
    ask: np.ndarray
    ask_size: np.ndarray
    part: np.ndarray  # part file index the row is written to
    is_correction: np.ndarray
    protected: np.ndarray  # leading quotes: never corrupted

    def __len__(self) -> int:
        return int(self.time_ms.shape[0])


def _lots(rng: np.random.Generator, n: int) -> np.ndarray:
    return 100 * rng.integers(1, 51, n, dtype=np.int64)


def _walk_levels(rng: np.random.Generator, p: DayParams, symbol: np.ndarray, offset_ms: np.ndarray,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(each event's log level on its symbol's walk, each symbol's log level at the close)."""
    steps = SESSION_MS // WALK_STEP_MS
    path = np.zeros((p.symbols, steps + 1))
    path[:, 1:] = np.cumsum(rng.standard_normal((p.symbols, steps)) * p.sigma, axis=1)
    i, rest = np.divmod(offset_ms, WALK_STEP_MS)
    level = path[symbol, i] + (path[symbol, i + 1] - path[symbol, i]) * (rest / WALK_STEP_MS)
    return level, path[:, -1]


def simulate_day(rng: np.random.Generator, p: DayParams, base_price: np.ndarray) -> tuple[DayEvents, np.ndarray]:
    """Events of one day and each symbol's closing level; ``base_price`` is each symbol's opening level."""
    pairs = p.symbols * p.exchanges
    weights = rng.uniform(0.5, 1.5, pairs)
    counts = rng.multinomial(p.events, weights / weights.sum())
    pair = np.repeat(np.arange(pairs, dtype=np.int64), counts)
    n = int(pair.shape[0])
    keyed = np.sort(pair * SESSION_MS + rng.integers(0, SESSION_MS, n, dtype=np.int64))
    offset = keyed - pair * SESSION_MS
    starts = np.cumsum(counts) - counts
    pos = np.arange(n, dtype=np.int64) - np.repeat(starts, counts)
    is_trade = rng.random(n) < p.trade_share
    is_trade[pos < LEADING_QUOTES] = False
    symbol = pair // p.exchanges
    level, close = _walk_levels(rng, p, symbol, offset)
    price = base_price[symbol] * np.exp(level + rng.standard_normal(n) * p.venue_sigma)
    half = rng.uniform(0.0001, 0.002, n)
    part = (offset * p.parts) // SESSION_MS
    ev = DayEvents(
        symbol=symbol, exchange=pair % p.exchanges, time_ms=SESSION_OPEN_MS + offset, seq=pos + 1,
        is_trade=is_trade, price=price, size=_lots(rng, n), bid=price * (1 - half), bid_size=_lots(rng, n),
        ask=price * (1 + half), ask_size=_lots(rng, n), part=part, is_correction=np.zeros(n, dtype=bool),
        protected=pos < LEADING_QUOTES,
    )
    return _with_corrections(rng, ev, p), base_price * np.exp(close)


def _with_corrections(rng: np.random.Generator, ev: DayEvents, p: DayParams) -> DayEvents:
    """Append re-sent copies of some records in a later part, with a different price (or bid/ask)."""
    candidates = np.flatnonzero(ev.part < p.parts - 1)
    m = int(round(p.correction_rate * len(ev)))
    if p.parts < 2 or m == 0 or candidates.size == 0:
        return ev
    src = np.sort(rng.choice(candidates, m, replace=True))  # with replacement: some keys corrected twice
    later = ev.part[src] + 1 + rng.integers(0, p.parts - 1 - ev.part[src])
    factor = 1 + rng.choice([-1.0, 1.0], m) * rng.uniform(0.0005, 0.01, m)
    half = rng.uniform(0.0001, 0.002, m)
    new_price = ev.price[src] * factor

    def cat(name: str, extra: np.ndarray) -> np.ndarray:
        return np.concatenate([getattr(ev, name), extra])

    return DayEvents(
        symbol=cat("symbol", ev.symbol[src]), exchange=cat("exchange", ev.exchange[src]),
        time_ms=cat("time_ms", ev.time_ms[src]), seq=cat("seq", ev.seq[src]),
        is_trade=cat("is_trade", ev.is_trade[src]), price=cat("price", new_price),
        size=cat("size", ev.size[src]), bid=cat("bid", new_price * (1 - half)),
        bid_size=cat("bid_size", ev.bid_size[src]), ask=cat("ask", new_price * (1 + half)),
        ask_size=cat("ask_size", ev.ask_size[src]), part=cat("part", later),
        is_correction=cat("is_correction", np.ones(m, dtype=bool)),
        protected=cat("protected", np.zeros(m, dtype=bool)),
    )
