"""datagen.corrupt: the malformed kinds, each breaking its own rule, at the configured rate."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from datagen import GenConfig, GenStats, generate
from datagen.corrupt import INVALID_BYTES, INVALID_MARK, JSON_ONLY, KINDS, QUOTE_ONLY, corrupt, invalid_bytes, kinds_for
from datagen.render import CSV_ORDER, JSON_ORDER, render_line
from transforms.validation import REASON_CODES

# An independent reading of the rules the kinds are named after (transforms.validation.REASONS, in its order):
# the first rule a raw line breaks, or None for a valid line.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{1,3}")
_INT = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+[.]?[0-9]*|[.][0-9]+)(?:[eE][+-]?[0-9]+)?")


def _no_constant(token: str) -> None:
    raise ValueError(f"not JSON: {token}")


def _valid_date(text: str) -> bool:
    try:
        return bool(_DATE.fullmatch(text)) and dt.date.fromisoformat(text) is not None
    except ValueError:
        return False


def _valid_timestamp(text: str) -> bool:
    try:
        return bool(_TS.fullmatch(text)) and _valid_date(text[:10]) and dt.time.fromisoformat(text[11:19]) is not None
    except ValueError:
        return False


def _broken_rule(raw: bytes, fmt: str, run_date: str) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "bad_encoding"
    if fmt == "json":
        try:  # numbers kept as their text, as the pipeline reads every field as a string
            obj = json.loads(text, parse_int=str, parse_float=str, parse_constant=_no_constant)
        except ValueError:
            return "broken_json"
        if not isinstance(obj, dict):
            return "broken_json"
        rec = obj.get("event_type")
        if rec not in ("T", "Q"):
            return "unknown_rec_type"
        if set(obj) != {key for key, _, _ in JSON_ORDER[rec]}:
            return "wrong_field_count"
        if any(isinstance(v, dict | list | bool) for v in obj.values()):
            return "bad_json_value"
        f = {field: obj[key] for key, field, _ in JSON_ORDER[rec]}
    else:
        values = text.split(",")
        rec = values[2] if len(values) > 2 else None
        if rec not in ("T", "Q"):
            return "unknown_rec_type"
        if len(values) != len(CSV_ORDER[rec]):
            return "wrong_field_count"
        f = dict(zip(CSV_ORDER[rec], values, strict=True))
    if not f["symbol"] or not f["exchange"]:
        return "missing_value"
    if not _valid_date(f["trade_dt"]):
        return "bad_date"
    if not (_valid_timestamp(f["event_tm"]) and _valid_timestamp(f["file_tm"])):
        return "bad_timestamp"
    prices = ["trade_pr"] if rec == "T" else ["bid_pr", "ask_pr"]
    sizes = ["trade_size"] if rec == "T" else ["bid_size", "ask_size"]
    if not all(_INT.fullmatch(f[k]) for k in ["event_seq_nb", *sizes]) or not all(
            _DECIMAL.fullmatch(f[k]) for k in prices):
        return "bad_number"
    if any(float(f[k]) <= 0 for k in prices + sizes):
        return "non_positive"
    if rec == "Q" and float(f["bid_pr"]) > float(f["ask_pr"]):
        return "bid_above_ask"
    if f["event_tm"][:10] != f["trade_dt"]:
        return "date_mismatch"
    if f["trade_dt"] != run_date:
        return "not_run_date"
    return None


BAD_RATE = 0.05


def _classified(root: Path) -> dict[tuple[str, int], str | None]:
    """(file relative to root, 1-based line number) -> the rule that line breaks, for every generated line."""
    out = {}
    for path in sorted(root.rglob("part-*.txt")):
        rel = path.relative_to(root).as_posix()
        fmt, run_date = rel.split("/")[:2]
        for no, raw in enumerate(path.read_bytes().split(b"\n")[:-1], start=1):
            out[(rel, no)] = _broken_rule(raw, fmt, run_date)
    return out


@pytest.fixture(scope="module")
def corrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenStats, dict[tuple[str, int], str | None]]:
    """One day with many malformed lines, and the rule each generated line breaks (read only by the tests)."""
    root = tmp_path_factory.mktemp("corrupted")
    stats = generate(GenConfig(out=root, days=1, events=20_000, symbols=2, parts=2, bad_rate=BAD_RATE,
                               correction_rate=0.0, collect_bad=True))
    return stats, _classified(root)


def test_kinds_are_the_pipeline_reason_codes_and_render_matches_vectorised(tmp_path):
    assert set(KINDS) == set(REASON_CODES)
    generate(GenConfig(out=tmp_path, days=1, events=300, symbols=1, bad_rate=0.0))
    line = next((tmp_path / "csv").rglob("part-00000.txt")).read_text().splitlines()[0]
    fields = dict(zip(CSV_ORDER["Q"], line.split(","), strict=True))
    assert render_line("csv", "Q", fields) == line


def test_each_malformed_line_breaks_its_kinds_rule_and_no_other_line_is_broken(corrupted):
    stats, classified = corrupted
    broken = {where: rule for where, rule in classified.items() if rule is not None}
    assert broken == {(rel, no): kind for rel, no, kind in stats.bad_lines}
    assert Counter(broken.values()) == stats.bad_by_kind


def test_each_kind_at_the_configured_rate(corrupted):
    _, classified = corrupted
    protected = 2 * 4 * 3  # the leading quotes of each (symbol, exchange) pair are never corrupted
    eligible = len(classified) - protected
    bad = Counter(rule for rule in classified.values() if rule is not None)
    total = sum(bad.values())
    assert abs(total - BAD_RATE * eligible) < 5 * math.sqrt(eligible * BAD_RATE * (1 - BAD_RATE))
    # a bad record's kind is uniform over the kinds its format and record type can have
    csv_share = sum(1 for rel, _ in classified if rel.startswith("csv/")) / len(classified)
    expected = {k: 0.0 for k in KINDS}
    for fmt, share in (("csv", csv_share), ("json", 1 - csv_share)):
        for rec, rec_share in (("T", 0.35), ("Q", 0.65)):
            kinds = kinds_for(fmt, rec)
            for k in kinds:
                expected[k] += total * share * rec_share / len(kinds)
    assert set(bad) == set(KINDS)
    for k in KINDS:
        assert abs(bad[k] - expected[k]) < 5 * math.sqrt(expected[k]) + 5, (k, bad[k], expected[k])


def test_kinds_for_restricts_json_and_quote_only_kinds():
    assert set(kinds_for("json", "Q")) == set(KINDS)
    assert set(kinds_for("csv", "Q")) == set(KINDS) - JSON_ONLY
    assert set(kinds_for("json", "T")) == set(KINDS) - QUOTE_ONLY
    assert set(kinds_for("csv", "T")) == set(KINDS) - JSON_ONLY - QUOTE_ONLY


def test_invalid_bytes_are_not_utf8_and_unknown_kind_is_rejected():
    data = invalid_bytes(("ok," + "S" + INVALID_MARK + "YM\n").encode())
    assert INVALID_BYTES in data
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    fields = {"trade_dt": "2020-08-05", "file_tm": "2020-08-05 11:00:00.0", "rec_type": "T", "symbol": "SYMA",
              "event_tm": "2020-08-05 10:00:00.5", "event_seq_nb": "4", "exchange": "NYSE", "trade_pr": "12.5",
              "trade_size": "100"}
    with pytest.raises(ValueError, match="unknown corruption kind 'nope'"):
        corrupt("nope", "csv", "T", fields, random.Random(0))
