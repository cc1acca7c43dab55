"""datagen.model: one simulated day's event arrays (sequence numbers, parts, corrections, protected rows).

Bid < ask, round lots, quotes before the first trade and determinism are asserted on the generated files in
test_generator.py; these tests look at the arrays simulate_day returns.
"""

from __future__ import annotations

import numpy as np

from datagen.model import LEADING_QUOTES, SESSION_MS, SESSION_OPEN_MS, DayParams, simulate_day


def _day(seed: int = 1, **kwargs):
    p = DayParams(**{"events": 6000, "symbols": 3, "exchanges": 2, "parts": 3, "trade_share": 0.35,
                     "correction_rate": 0.02} | kwargs)
    ev, close = simulate_day(np.random.default_rng(seed), p, np.array([50.0, 100.0, 200.0])[: p.symbols])
    return p, ev, close


def test_originals_are_numbered_per_pair_in_time_order_within_the_session():
    p, ev, close = _day()
    orig = ~ev.is_correction
    assert orig.sum() == p.events and close.shape == (p.symbols,)
    offset = ev.time_ms[orig] - SESSION_OPEN_MS
    assert offset.min() >= 0 and offset.max() < SESSION_MS
    assert np.array_equal(ev.part[orig], offset * p.parts // SESSION_MS)  # a part is a slice of the session
    pair = ev.symbol[orig] * p.exchanges + ev.exchange[orig]
    for k in range(p.symbols * p.exchanges):
        rows = np.flatnonzero(pair == k)
        assert rows.size > 0
        assert np.array_equal(ev.seq[orig][rows], np.arange(1, rows.size + 1))
        assert np.all(np.diff(ev.time_ms[orig][rows]) >= 0)


def test_protected_rows_are_the_leading_quotes_of_each_pair():
    p, ev, _ = _day()
    assert np.array_equal(ev.protected, ~ev.is_correction & (ev.seq <= LEADING_QUOTES))
    assert ev.protected.sum() == p.symbols * p.exchanges * LEADING_QUOTES
    assert not ev.is_trade[ev.protected].any()


def test_trade_share_among_the_unprotected_events():
    p, ev, _ = _day(events=20_000)
    free = ~ev.protected & ~ev.is_correction
    assert abs(ev.is_trade[free].mean() - p.trade_share) < 0.02


def test_corrections_resend_an_original_in_a_later_part():
    p, ev, _ = _day()
    corr = np.flatnonzero(ev.is_correction)
    assert corr.size == round(p.correction_rate * p.events)
    assert corr.min() == p.events  # originals first, then corrections
    key = {(s, x, q): (t, part, tr) for s, x, q, t, part, tr in zip(
        ev.symbol[: p.events], ev.exchange[: p.events], ev.seq[: p.events], ev.time_ms[: p.events],
        ev.part[: p.events], ev.is_trade[: p.events], strict=True)}
    for i in corr:
        t, part, trade = key[(ev.symbol[i], ev.exchange[i], ev.seq[i])]
        assert ev.time_ms[i] == t and ev.is_trade[i] == trade
        assert part < ev.part[i] < p.parts
    assert not ev.protected[corr].any()


def test_no_corrections_with_a_single_part_or_a_zero_rate_and_an_empty_day_works():
    for kwargs in ({"parts": 1, "correction_rate": 0.5}, {"correction_rate": 0.0}):
        _, ev, _ = _day(**kwargs)
        assert not ev.is_correction.any()
    p, ev, close = _day(events=0)
    assert len(ev) == 0 and close.shape == (p.symbols,) and np.all(close > 0)
