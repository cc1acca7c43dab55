"""Test helpers: a TransformContext for direct calls, schema defaults, tolerant row comparison, and the analyze DAG
for one date of the generated market (the builder's three dates)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema

from engine.context import TransformContext
from tests.transforms.analytics.builder import DATES
from transforms.analytics.bars import bars
from transforms.analytics.daily_metrics import daily_metrics
from transforms.analytics.moving_average import moving_average
from transforms.analytics.prior_close import prior_close
from transforms.analytics.quote_enrichment import quote_enrichment

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas" / "transforms"
REL = 1e-9

THU, FRI, MON = DATES
TRADE_KEY = ["trade_dt", "symbol", "exchange", "event_tm", "event_seq_nb"]
WINDOW = dt.timedelta(minutes=30)


def ctx(spark: Any, date: dt.date | None, step: str = "x") -> TransformContext:
    return TransformContext(spark=spark, date=date, step=step, log=logging.getLogger("t"),
                            _dataset_reader=lambda rel: None, _raw_reader=lambda rel: None)


def params(name: str, **overrides: Any) -> dict[str, Any]:
    """The params the engine would pass: schema defaults filled in, then validated."""
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    out = {k: v["default"] for k, v in schema["properties"].items() if "default" in v}
    out.update(overrides)
    jsonschema.validate(out, schema)
    return out


def same(actual: Any, expected: Any) -> bool:
    if expected is None or actual is None:
        return actual is None and expected is None
    if isinstance(expected, float) or isinstance(actual, float):
        return math.isclose(actual, expected, rel_tol=REL, abs_tol=1e-12)
    return actual == expected


def compare(actual: dict[tuple, dict], expected: dict[tuple, dict], columns: Iterable[str]) -> None:
    """Exact keys and counts; every column equal (floats within 1e-9 relative)."""
    assert len(actual) == len(expected), f"{len(actual)} rows, expected {len(expected)}"
    assert set(actual) == set(expected), f"keys differ: {sorted(set(actual) ^ set(expected))[:5]}"
    bad = [(k, c, actual[k][c], expected[k][c]) for k in expected for c in columns
           if not same(actual[k][c], expected[k][c])]
    assert not bad, f"{len(bad)} mismatches, first: {bad[:5]}"


def keyed(df: Any, keys: list[str]) -> dict[tuple, dict]:
    rows = [r.asDict(recursive=True) for r in df.collect()]
    out = {tuple(r[k] for k in keys): r for r in rows}
    assert len(out) == len(rows), f"duplicate keys {keys} in output"
    return out


def day(df: Any, date: dt.date) -> Any:
    return df.where(df.trade_dt == date)


def pipeline_day(spark: Any, frames: tuple[Any, Any], date: dt.date) -> dict[str, Any]:
    """The analyze DAG for one date, by direct calls: what analyze.yaml wires."""
    trades, quotes = day(frames[0], date), day(frames[1], date)
    c = ctx(spark, date)
    ma = moving_average(c, {"trades": trades}, params("moving_average"))
    closes = prior_close(c, {"history": frames[0]}, params("prior_close"))
    sym_closes = prior_close(c, {"history": frames[0]}, params("prior_close", by=["symbol"]))
    bars_1m = bars(c, {"trades": trades}, params("bars"))
    daily = daily_metrics(c, {"bars": bars_1m, "quotes": quotes, "closes": sym_closes}, params("daily_metrics"))
    return {"ma": ma, "closes": closes, "sym_closes": sym_closes, "bars": bars_1m, "daily": daily,
            "enriched": quote_enrichment(c, {"quotes": quotes, "trades": ma, "closes": closes},
                                         params("quote_enrichment"))}
