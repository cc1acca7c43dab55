"""Generate raw exchange files: ``<out>/<csv|json>/<date>/<exchange>/part-NNNNN.txt``, deterministic from a seed.

``generate(GenConfig(...))`` is the importable entry point (tests, demo, benchmarks); ``python -m datagen``
wraps it. Same config and seed -> byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datagen import render
from datagen.calendar import trading_days
from datagen.corrupt import corrupt, invalid_bytes, kinds_for
from datagen.model import SESSION_MS, SESSION_OPEN_MS, DayEvents, DayParams, simulate_day

DEFAULT_EXCHANGES: tuple[tuple[str, str], ...] = (("NYSE", "csv"), ("NASDAQ", "json"), ("ARCA", "csv"),
                                                  ("BATS", "json"))


@dataclass(frozen=True)
class GenConfig:
    out: Path  # the raw root to write; a str is accepted too (made a Path)
    seed: int = 42
    start: dt.date = dt.date(2020, 8, 5)
    days: int = 2
    events: int = 20_000  # per day, before corrections
    symbols: int = 8
    exchanges: tuple[tuple[str, str], ...] = DEFAULT_EXCHANGES  # (name, csv|json)
    parts: int = 3  # part files per exchange and day
    bad_rate: float = 0.002
    correction_rate: float = 0.01
    trade_share: float = 0.35
    collect_bad: bool = False  # return (file, line_no, kind) of every corrupted line

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))  # frozen: GenConfig(out="raw") works as out=Path("raw")
        if self.days < 1 or self.events < 0 or self.symbols < 1 or self.parts < 1:
            raise ValueError("days, symbols and parts must be >= 1 and events >= 0")
        if not self.exchanges:
            raise ValueError("at least one exchange is needed")
        for name, fmt in self.exchanges:
            if fmt not in ("csv", "json") or not name or "/" in name:
                raise ValueError(f"bad exchange '{name}:{fmt}': expected NAME:csv or NAME:json")
        names = [name for name, _fmt in self.exchanges]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:  # one exchange's files would overwrite the other's, or its events repeat the other's keys
            raise ValueError(f"exchange {', '.join(twice)} given more than once: each exchange has one format")
        for what, rate in (("bad_rate", self.bad_rate), ("correction_rate", self.correction_rate),
                           ("trade_share", self.trade_share)):
            if not 0 <= rate <= 1:
                raise ValueError(f"{what} must be within [0, 1], got {rate}")


@dataclass
class GenStats:
    days: list[str] = field(default_factory=list)
    files: int = 0
    lines: int = 0
    bytes: int = 0
    corrections: int = 0
    bad_by_kind: Counter[str] = field(default_factory=Counter)
    bad_lines: list[tuple[str, int, str]] = field(default_factory=list)


def symbol_names(n: int) -> list[str]:
    """SYMA..SYMZ, then SYMAA, SYMAB, ..."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = []
    for i in range(n):
        s, j = "", i
        while True:
            s = letters[j % 26] + s
            j = j // 26 - 1
            if j < 0:
                break
        out.append("SYM" + s)
    return out


def _field_arrays(ev: DayEvents, rows: np.ndarray, rec: str, day: str, exchange: str, file_tms: pa.Array,
                  symbols: pa.Array) -> dict[str, pa.Array | pa.Scalar]:
    seq = render.numbers(ev.seq[rows])
    sym = symbols.take(pa.array(ev.symbol[rows]))
    fields: dict[str, pa.Array | pa.Scalar] = {
        "trade_dt": render.lit(day), "file_tm": file_tms.take(pa.array(ev.part[rows])),
        "rec_type": render.lit(rec), "symbol": sym, "event_tm": render.timestamps(day, ev.time_ms[rows]),
        "event_seq_nb": seq, "exchange": render.lit(exchange),
    }
    if rec == "T":
        fields |= {"trade_pr": render.numbers(ev.price[rows]), "trade_size": render.numbers(ev.size[rows]),
                   "execution_id": render.join([render.lit(f"{exchange}-{day.replace('-', '')}-"), sym,
                                                render.lit("-"), seq], "")}
    else:
        fields |= {"bid_pr": render.numbers(ev.bid[rows]), "bid_size": render.numbers(ev.bid_size[rows]),
                   "ask_pr": render.numbers(ev.ask[rows]), "ask_size": render.numbers(ev.ask_size[rows])}
    return fields


def _scalar_fields(fields: dict[str, pa.Array | pa.Scalar], idx: np.ndarray) -> list[dict[str, str]]:
    cols = {k: ([v.as_py()] * len(idx) if isinstance(v, pa.Scalar) else v.take(pa.array(idx)).to_pylist())
            for k, v in fields.items()}
    return [{k: cols[k][i] for k in cols} for i in range(len(idx))]


def _write_exchange(cfg: GenConfig, stats: GenStats, ev: DayEvents, bad: np.ndarray, rng: np.random.Generator,
                    day: str, ex_index: int, exchange: str, fmt: str, symbols: pa.Array) -> None:
    sub = np.flatnonzero(ev.exchange == ex_index)
    sub = sub[np.lexsort((ev.seq[sub], ev.time_ms[sub], ev.is_correction[sub], ev.part[sub]))]
    part_ms = [SESSION_OPEN_MS + (k + 1) * SESSION_MS // cfg.parts + 37 * ex_index + k for k in range(cfg.parts)]
    file_tms = pa.array([render.fmt_ms(day, ms) for ms in part_ms], render.LS)
    trade = ev.is_trade[sub]
    pieces, positions = [], []
    sub_bad = bad[sub]
    replace_at: list[int] = []
    replace_with: list[str] = []
    bad_here: list[tuple[int, str]] = []
    rnd = random.Random(int(rng.integers(0, 2**63)))
    for rec, mask in (("T", trade), ("Q", ~trade)):
        local = np.flatnonzero(mask)
        fields = _field_arrays(ev, sub[local], rec, day, exchange, file_tms, symbols)
        pieces.append(render.lines(fmt, rec, fields))
        positions.append(local)
        bad_local = np.flatnonzero(sub_bad[local])
        choices = kinds_for(fmt, rec)
        kinds = rng.integers(0, len(choices), bad_local.size)
        for k, fdict, pos in zip(kinds, _scalar_fields(fields, bad_local), local[bad_local], strict=True):
            kind = choices[int(k)]
            replace_at.append(int(pos))
            replace_with.append(corrupt(kind, fmt, rec, fdict, rnd))
            stats.bad_by_kind[kind] += 1
            bad_here.append((int(pos), kind))
    inverse = np.empty(sub.size, dtype=np.int64)
    inverse[np.concatenate(positions)] = np.arange(sub.size)
    lines = pa.concat_arrays(pieces).take(pa.array(inverse))
    if replace_at:
        order = np.argsort(replace_at)
        mask = np.zeros(sub.size, dtype=bool)
        mask[np.asarray(replace_at)[order]] = True
        lines = pc.replace_with_mask(lines, pa.array(mask), pa.array([replace_with[i] for i in order], render.LS))
    lines = render.with_newlines(lines)
    bounds = np.searchsorted(ev.part[sub], np.arange(cfg.parts + 1))
    folder = cfg.out / fmt / day / exchange
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(cfg.parts):
        a, b = int(bounds[k]), int(bounds[k + 1])
        data = render.raw_bytes(lines.slice(a, b - a)) if b > a else memoryview(b"")
        if any(kind == "bad_encoding" and a <= pos < b for pos, kind in bad_here):
            data = invalid_bytes(bytes(data))
        name = f"part-{k:05d}.txt"
        (folder / name).write_bytes(data)
        stats.files += 1
        stats.bytes += len(data)
        if cfg.collect_bad:
            rel = f"{fmt}/{day}/{exchange}/{name}"
            stats.bad_lines.extend((rel, pos - a + 1, kind) for pos, kind in bad_here if a <= pos < b)
    stats.lines += sub.size


def generate(cfg: GenConfig) -> GenStats:
    """Write every day's files under ``cfg.out``; returns what was written."""
    stats = GenStats()
    symbols = pa.array(symbol_names(cfg.symbols), render.LS)
    base = np.random.default_rng([cfg.seed, 0]).uniform(20, 400, cfg.symbols)
    params = DayParams(events=cfg.events, symbols=cfg.symbols, exchanges=len(cfg.exchanges), parts=cfg.parts,
                       trade_share=cfg.trade_share, correction_rate=cfg.correction_rate)
    for d in trading_days(cfg.start, cfg.days):
        day = d.isoformat()
        rng = np.random.default_rng([cfg.seed, d.toordinal()])
        ev, close = simulate_day(rng, params, base)
        bad = (rng.random(len(ev)) < cfg.bad_rate) & ~ev.protected
        for i, (exchange, fmt) in enumerate(cfg.exchanges):
            _write_exchange(cfg, stats, ev, bad, rng, day, i, exchange, fmt, symbols)
        stats.days.append(day)
        stats.corrections += int(ev.is_correction.sum())
        base = close * np.exp(rng.normal(0.0, 0.005, cfg.symbols))  # the next open gaps a little from the close
    return stats
