"""An independent plain-Python implementation of DESIGN.md Data items 1 and 2, used as the tests' oracle.

It reads raw files line by line and applies the rules in the documented precedence; it shares no code with
transforms/ (only the rule order and reason codes, which are the contract).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATE_RX = re.compile(r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}")
TS_RX = re.compile(r"([1-9][0-9]{3})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{1,3})")
INT_RX = re.compile(r"[+-]?[0-9]+")
DEC_RX = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")

T_KEYS = sorted(["trade_dt", "file_tm", "event_type", "symbol", "execution_id", "event_tm", "event_seq_nb",
                 "exchange", "price", "size"])
Q_KEYS = sorted(["trade_dt", "file_tm", "event_type", "symbol", "event_tm", "event_seq_nb", "exchange",
                 "bid_pr", "bid_size", "ask_pr", "ask_size"])


@dataclass(frozen=True)
class RefRecord:
    source_file: str
    line_no: int
    raw_line: str
    reason: str | None
    values: dict[str, Any] | None  # typed values of a valid record


def _date(s: Any) -> dt.date | None:
    if not isinstance(s, str) or not DATE_RX.fullmatch(s):
        return None
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        return None


def _ts(s: Any) -> dt.datetime | None:
    m = TS_RX.fullmatch(s) if isinstance(s, str) else None
    if not m:
        return None
    y, mo, d, h, mi, se, frac = m.groups()
    try:
        return dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(se), int(frac.ljust(6, "0")))
    except ValueError:
        return None


def _int(s: Any) -> int | None:
    if not isinstance(s, str) or not INT_RX.fullmatch(s):
        return None
    v = int(s)
    return v if -(2**63) <= v < 2**63 else None


def _float(s: Any) -> float | None:
    if not isinstance(s, str) or not DEC_RX.fullmatch(s):
        return None
    v = float(s)
    return v if math.isfinite(v) else None


class _Obj(list):
    """A JSON object as its (key, value) pairs, duplicates kept."""


def _json_text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, _Obj):
        return "{object}"
    if isinstance(v, list):
        return "[array]"
    return str(v)


def _fields_csv(line: str) -> tuple[str | None, dict[str, Any] | None]:
    """(reason so far or None, common fields)."""
    parts = line.split(",")
    rec = parts[2] if len(parts) > 2 else None
    if rec not in ("T", "Q"):
        return "unknown_rec_type", None
    if len(parts) != (9 if rec == "T" else 11):
        return "wrong_field_count", None
    names = ["trade_dt", "file_tm", "rec_type", "symbol", "event_tm", "event_seq_nb", "exchange"]
    names += ["trade_pr", "trade_size"] if rec == "T" else ["bid_pr", "bid_size", "ask_pr", "ask_size"]
    f: dict[str, Any] = dict(zip(names, parts, strict=True))
    f["execution_id"] = None
    return None, f


def _not_json(token: str) -> None:
    """Python reads NaN, Infinity and -Infinity; JSON (RFC 8259) has no such tokens."""
    raise ValueError(f"{token} is not JSON")


def _fields_json(line: str) -> tuple[str | None, dict[str, Any] | None]:
    try:
        pairs = json.loads(line, object_pairs_hook=_Obj, parse_float=str, parse_int=str,
                           parse_constant=_not_json)
    except (ValueError, RecursionError):
        return "broken_json", None
    if not isinstance(pairs, _Obj):
        return "broken_json", None
    obj = {k: _json_text(v) for k, v in pairs}  # the last of duplicate keys; key set checked below
    rec = obj.get("event_type")
    if rec not in ("T", "Q"):
        return "unknown_rec_type", None
    if sorted(k for k, _ in pairs) != (T_KEYS if rec == "T" else Q_KEYS):
        return "wrong_field_count", None
    if any(isinstance(v, (bool, list)) for _k, v in pairs):  # an _Obj is a list too
        return "bad_json_value", None
    f = {k: obj.get(k) for k in ("trade_dt", "file_tm", "symbol", "event_tm", "event_seq_nb", "exchange")}
    f["rec_type"] = rec
    if rec == "T":
        f |= {"trade_pr": obj["price"], "trade_size": obj["size"], "execution_id": obj["execution_id"]}
    else:
        f |= {k: obj[k] for k in ("bid_pr", "bid_size", "ask_pr", "ask_size")}
        f["execution_id"] = None
    return None, f


def classify(fmt: str, line: str, run_date: dt.date | None) -> tuple[str | None, dict[str, Any] | None]:
    """(reason, None) for a bad line; (None, typed values) for a valid one.

    ``line`` as ``read_lines`` gives it: bytes that are not UTF-8 appear as surrogate escapes.
    """
    if any("\udc80" <= ch <= "\udcff" for ch in line):
        return "bad_encoding", None
    reason, f = (_fields_csv if fmt == "csv" else _fields_json)(line)
    if reason or f is None:
        return reason, None
    rec = f["rec_type"]
    if not f["symbol"] or not f["exchange"]:
        return "missing_value", None
    trade_dt = _date(f["trade_dt"])
    if trade_dt is None:
        return "bad_date", None
    event_tm, arrival_tm = _ts(f["event_tm"]), _ts(f["file_tm"])
    if event_tm is None or arrival_tm is None:
        return "bad_timestamp", None
    prices = ["trade_pr"] if rec == "T" else ["bid_pr", "ask_pr"]
    sizes = ["trade_size"] if rec == "T" else ["bid_size", "ask_size"]
    v: dict[str, Any] = {"event_seq_nb": _int(f["event_seq_nb"])}
    v |= {p: _float(f[p]) for p in prices}
    v |= {s: _int(f[s]) for s in sizes}
    if any(x is None for x in v.values()):
        return "bad_number", None
    if any(v[k] <= 0 for k in prices + sizes):
        return "non_positive", None
    if rec == "Q" and v["bid_pr"] > v["ask_pr"]:
        return "bid_above_ask", None
    if trade_dt != event_tm.date():
        return "date_mismatch", None
    if run_date is not None and trade_dt != run_date:
        return "not_run_date", None
    v |= {"trade_dt": trade_dt, "rec_type": rec, "symbol": f["symbol"], "exchange": f["exchange"],
          "event_tm": event_tm, "arrival_tm": arrival_tm, "execution_id": f["execution_id"]}
    return None, v


def read_lines(path: Path) -> list[str]:
    """Lines as Spark's text reader with lineSep '\\n' sees them (a trailing '\\r' stripped); a byte that is not
    UTF-8 is kept as a surrogate escape (see ``shown``)."""
    text = path.read_bytes().decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def shown(line: str) -> str:
    """A line as the quarantine keeps it: each invalid byte sequence as U+FFFD."""
    return line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def ingest_day(raw: Path, day: dt.date, folders: dict[str, str] | None = None) -> list[RefRecord]:
    """Every line of the day's files, classified."""
    out: list[RefRecord] = []
    for folder, fmt in (folders or {"csv": "csv", "json": "json"}).items():
        base = raw / folder / day.isoformat()
        for path in sorted(base.glob("*/part-*")):
            rel = path.relative_to(raw).as_posix()
            for i, line in enumerate(read_lines(path), start=1):
                reason, values = classify(fmt, line, day)
                out.append(RefRecord(rel, i, shown(line), reason, values))
    return out


def eod(records: list[RefRecord]) -> dict[tuple, RefRecord]:
    """Latest arrival per key; ties: greatest source_file, then greatest line number."""
    best: dict[tuple, RefRecord] = {}
    for r in records:
        if r.reason is not None or r.values is None:
            continue
        v = r.values
        key = (v["trade_dt"], v["rec_type"], v["symbol"], v["exchange"], v["event_tm"], v["event_seq_nb"])
        cur = best.get(key)
        if cur is None or (v["arrival_tm"], r.source_file, r.line_no) > (
                cur.values["arrival_tm"], cur.source_file, cur.line_no):  # type: ignore[index]
            best[key] = r
    return best
