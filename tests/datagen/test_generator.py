"""The generator: determinism, weekends skipped, layout, realism constraints, config checks."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import pytest

from datagen import GenConfig, generate
from datagen.render import CSV_ORDER


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.txt"))}


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    cfg = dict(days=2, events=3000, symbols=3, bad_rate=0.01)
    generate(GenConfig(out=tmp_path / "a", seed=5, **cfg))
    generate(GenConfig(out=tmp_path / "b", seed=5, **cfg))
    generate(GenConfig(out=tmp_path / "c", seed=6, **cfg))
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a == b and a.keys() == c.keys() and a != c


def test_weekends_skipped_and_layout(tmp_path):
    stats = generate(GenConfig(out=tmp_path, start=dt.date(2020, 8, 7), days=3, events=500, symbols=2, parts=2))
    assert stats.days == ["2020-08-07", "2020-08-10", "2020-08-11"]  # Friday, then Monday, Tuesday
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == stats.days
    assert sorted(p.name for p in (tmp_path / "csv" / "2020-08-10").iterdir()) == ["ARCA", "NYSE"]
    assert sorted(p.name for p in (tmp_path / "json" / "2020-08-10" / "NASDAQ").iterdir()) == [
        "part-00000.txt", "part-00001.txt"]


def test_clean_data_is_realistic(tmp_path):
    generate(GenConfig(out=tmp_path, days=1, events=20000, symbols=2, bad_rate=0.0, correction_rate=0.0))
    first_trade: dict[tuple, str] = {}
    first_quote: dict[tuple, str] = {}
    trades_per_30min: dict[tuple, int] = defaultdict(int)
    for path in (tmp_path / "csv").rglob("part-*"):
        for line in path.read_text().splitlines():
            f = dict(zip(CSV_ORDER[line.split(",")[2]], line.split(","), strict=True))
            key = (f["symbol"], f["exchange"])
            assert 1 <= len(f["event_tm"].split(".")[1]) <= 3
            if f["rec_type"] == "Q":
                assert float(f["bid_pr"]) < float(f["ask_pr"])
                assert int(f["bid_size"]) % 100 == 0 and int(f["ask_size"]) % 100 == 0
                first_quote[key] = min(first_quote.get(key, "~"), f["event_tm"])
            else:
                assert int(f["trade_size"]) % 100 == 0
                assert len(f["trade_pr"].split(".")[1]) > 6  # full float precision, not cents
                first_trade[key] = min(first_trade.get(key, "~"), f["event_tm"])
                trades_per_30min[(key, f["event_tm"][11:13], f["event_tm"][14:16] < "30")] += 1
    assert all(first_quote[k] < first_trade[k] for k in first_trade)
    assert len(trades_per_30min) == 4 * 13 and min(trades_per_30min.values()) >= 15


def _trades(root: Path) -> list[tuple[str, str, str, str, float]]:
    """(date, symbol, exchange, event_tm, price) of every trade line, CSV and JSON."""
    out = []
    for path in sorted(root.rglob("part-*")):
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                if r["event_type"] == "T":
                    out.append((r["trade_dt"], r["symbol"], r["exchange"], r["event_tm"], float(r["price"])))
            elif line.split(",")[2] == "T":
                f = dict(zip(CSV_ORDER["T"], line.split(","), strict=True))
                out.append((f["trade_dt"], f["symbol"], f["exchange"], f["event_tm"], float(f["trade_pr"])))
    return out


def test_exchanges_of_a_symbol_trade_together_and_a_day_opens_near_the_last_close(tmp_path):
    generate(GenConfig(out=tmp_path, days=2, events=20000, symbols=3, bad_rate=0.0, correction_rate=0.0))
    trades = _trades(tmp_path)
    by_minute: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for day, sym, ex, tm, pr in trades:
        by_minute[(day, sym, tm[:16])][ex].append(pr)
    # within one minute the four exchanges of a symbol trade within 1% of one another
    spreads = [max(map(max, v.values())) / min(map(min, v.values())) - 1 for v in by_minute.values() if len(v) == 4]
    assert len(spreads) > 500 and max(spreads) < 0.01
    # while the symbol moves over the day by more than that noise
    days = sorted({t[0] for t in trades})
    for sym in {t[1] for t in trades}:
        first, second = (sorted((tm, pr) for d, s, _, tm, pr in trades if d == day and s == sym) for day in days)
        day_range = max(p for _, p in first) / min(p for _, p in first) - 1
        assert day_range > 0.002
        assert abs(second[0][1] / first[-1][1] - 1) < 0.05  # the next day opens near the last close


def test_corrections_in_later_part_with_later_file_tm_and_other_price(tmp_path):
    generate(GenConfig(out=tmp_path, days=1, events=4000, symbols=2, parts=3, bad_rate=0.0, correction_rate=0.05))
    seen: dict[tuple, list[tuple[str, str, str]]] = defaultdict(list)
    for path in sorted((tmp_path / "json").rglob("part-*")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            price = r.get("price", r.get("bid_pr"))
            seen[(r["event_type"], r["symbol"], r["exchange"], r["event_tm"], r["event_seq_nb"])].append(
                (path.name, r["file_tm"], repr(price)))
    dups = [v for v in seen.values() if len(v) > 1]
    assert len(dups) > 20
    for versions in dups:
        original = versions[0]
        for later in versions[1:]:
            assert later[0] > original[0] and later[1] > original[1] and later[2] != original[2]


@pytest.mark.parametrize("kwargs", [{"days": 0}, {"bad_rate": 1.5}, {"exchanges": (("A", "xml"),)},
                                    {"exchanges": (("X", "csv"), ("X", "csv"))},
                                    {"exchanges": (("X", "csv"), ("Y", "json"), ("X", "json"))}])
def test_invalid_config_rejected(tmp_path, kwargs):
    with pytest.raises(ValueError):
        GenConfig(out=tmp_path, **kwargs)


def test_out_may_be_a_str(tmp_path, monkeypatch):
    """README: ``generate(GenConfig(out=path, ...))``; a str failed deep inside (``'str' / 'str'``)."""
    monkeypatch.chdir(tmp_path)
    cfg = GenConfig(out="g5", days=1, events=200, symbols=2, parts=1)
    assert cfg.out == Path("g5")
    stats = generate(cfg)
    assert stats.files > 0 and (tmp_path / "g5" / "csv" / "2020-08-05").is_dir()
