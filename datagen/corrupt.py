"""Malformed records: each kind breaks one rule of DESIGN.md Data item 1 and nothing before it.

Kinds are named like the pipeline's reason codes. A corrupted record is rendered in plain Python; there are
few of them (``--bad-rate``), so this is not on the bulk path.
"""

from __future__ import annotations

import datetime as dt
import random
import re

from datagen.render import render_line

KINDS: tuple[str, ...] = (
    "bad_encoding", "broken_json", "unknown_rec_type", "wrong_field_count", "bad_json_value", "missing_value",
    "bad_date", "bad_timestamp", "bad_number", "non_positive", "bid_above_ask", "date_mismatch", "not_run_date",
)
JSON_ONLY = {"broken_json", "bad_json_value"}
QUOTE_ONLY = {"bid_above_ask"}
# A line cannot hold bytes that are not UTF-8, so a bad_encoding line carries this (private-use) character
# instead, and the writer turns its UTF-8 form into INVALID_BYTES (see ``invalid_bytes``).
INVALID_MARK = "\ue000"
INVALID_BYTES = b"\xff\xfe"


def kinds_for(fmt: str, rec: str) -> tuple[str, ...]:
    return tuple(k for k in KINDS if (fmt == "json" or k not in JSON_ONLY) and (rec == "Q" or k not in QUOTE_ONLY))


def invalid_bytes(data: bytes) -> bytes:
    """A file's bytes with each INVALID_MARK of its bad_encoding lines made bytes that are not UTF-8."""
    return data.replace(INVALID_MARK.encode(), INVALID_BYTES)


def _json_value(line: str, key: str, old: str, rnd: random.Random) -> str:
    """``line`` with the JSON value of ``key`` (rendered as ``old``) made an object, an array or a boolean."""
    text = old.strip('"')
    new = rnd.choice([f'{{"value":"{text}"}}', f'["{text}"]', rnd.choice(["true", "false"])])
    return line.replace(f'"{key}":{old}', f'"{key}":{new}', 1)


def _shift_date(text: str, days: int) -> str:
    d = dt.date.fromisoformat(text[:10]) + dt.timedelta(days=days)
    return d.isoformat() + text[10:]


def corrupt(kind: str, fmt: str, rec: str, fields: dict[str, str], rnd: random.Random) -> str:
    """The raw line of a record whose field texts are ``fields``, broken in the way ``kind`` names."""
    f = dict(fields)
    price_f = ["trade_pr"] if rec == "T" else ["bid_pr", "ask_pr"]
    size_f = ["trade_size"] if rec == "T" else ["bid_size", "ask_size"]
    quote_all = False
    if kind == "broken_json":
        line = render_line(fmt, rec, f)
        if rnd.random() < 0.25:  # a token Jackson would take if let (NaN, Infinity) for a value, or 'single quotes'
            key = rnd.choice(["symbol", "event_seq_nb", "price" if rec == "T" else "bid_pr"])
            token = rnd.choice(["NaN", "Infinity", "-Infinity", "'x'"])
            return re.sub(rf'"{key}":("[^"]*"|[^,}}]*)', f'"{key}":{token}', line, count=1)
        return line[: rnd.randint(1, len(line) - 1)]
    if kind == "bad_encoding":
        f["symbol"] = f["symbol"][:1] + INVALID_MARK + f["symbol"][1:]
    elif kind == "bad_json_value":
        key, field = rnd.choice([("symbol", "symbol"), ("exchange", "exchange"),
                                 *([("execution_id", "execution_id"), ("price", "trade_pr"), ("size", "trade_size")]
                                   if rec == "T" else [("bid_pr", "bid_pr"), ("ask_size", "ask_size")])])
        line = render_line(fmt, rec, f)
        quoted = field in ("symbol", "exchange", "execution_id")
        return _json_value(line, key, f'"{f[field]}"' if quoted else f[field], rnd)
    elif kind == "unknown_rec_type":
        f["rec_type"] = rnd.choice(["X", "", "t", "TRADE"])
    elif kind == "wrong_field_count":
        drop = rnd.choice(price_f + size_f)
        if fmt == "csv" and rnd.random() < 0.5:
            return render_line(fmt, rec, f) + ",extra"
        del f[drop]
    elif kind == "missing_value":
        f[rnd.choice(["symbol", "exchange"])] = ""
    elif kind == "bad_date":
        f["trade_dt"] = rnd.choice([f["trade_dt"].replace("-", "/"), f["trade_dt"][:8] + "32",
                                    f["trade_dt"][:5] + "13" + f["trade_dt"][7:], "N/A"])
    elif kind == "bad_timestamp":
        which = rnd.choice(["event_tm", "file_tm"])
        t = f[which]
        f[which] = rnd.choice([t[:11] + "25" + t[13:], t.replace(" ", "T"), t.split(".")[0], t + "0000"])
    elif kind == "bad_number":
        target = rnd.choice(["event_seq_nb", *price_f, *size_f])
        f[target] = rnd.choice(["abc", "1.2.3", "NaN", "1e", "12a"]) if target in price_f else rnd.choice(
            ["1.5", "x", "1e3", "100.0"])
        quote_all = fmt == "json"  # a JSON number that does not parse is a string value, not broken JSON
        line = render_line(fmt, rec, f)
        if quote_all:
            key = {"trade_pr": "price", "trade_size": "size"}.get(target, target)
            line = line.replace(f'"{key}":{f[target]}', f'"{key}":"{f[target]}"', 1)
        return line
    elif kind == "non_positive":
        target = rnd.choice(price_f + size_f)
        f[target] = "0" if target in size_f else ("-" + f[target] if rnd.random() < 0.7 else "0.0")
    elif kind == "bid_above_ask":
        f["bid_pr"], f["ask_pr"] = f["ask_pr"], f["bid_pr"]
    elif kind == "date_mismatch":
        f["event_tm"] = _shift_date(f["event_tm"], 1)
    elif kind == "not_run_date":
        f["trade_dt"] = _shift_date(f["trade_dt"], -1)
        f["event_tm"] = _shift_date(f["event_tm"], -1)
    else:
        raise ValueError(f"unknown corruption kind '{kind}'")
    return render_line(fmt, rec, f, quote_all=quote_all)
