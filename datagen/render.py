"""Turn event arrays into raw CSV or JSON lines with Arrow compute kernels (no per-line Python).

Prices are written with the shortest text that round-trips the float64 (full precision), timestamps as
``YYYY-MM-DD HH:MM:SS.f`` with trailing fraction zeros trimmed (1 to 3 digits, as exchanges send them).
``render_line`` renders one record from field texts in plain Python; it is used for the few corrupted rows
and must produce exactly what the vectorised path produces for a valid row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

LS = pa.large_string()

CSV_ORDER = {"T": ("trade_dt", "file_tm", "rec_type", "symbol", "event_tm", "event_seq_nb", "exchange",
                   "trade_pr", "trade_size"),
             "Q": ("trade_dt", "file_tm", "rec_type", "symbol", "event_tm", "event_seq_nb", "exchange",
                   "bid_pr", "bid_size", "ask_pr", "ask_size")}
# JSON: (key, field, quoted)
JSON_ORDER = {"T": (("trade_dt", "trade_dt", True), ("file_tm", "file_tm", True), ("event_type", "rec_type", True),
                    ("symbol", "symbol", True), ("execution_id", "execution_id", True),
                    ("event_tm", "event_tm", True), ("event_seq_nb", "event_seq_nb", False),
                    ("exchange", "exchange", True), ("price", "trade_pr", False), ("size", "trade_size", False)),
              "Q": (("trade_dt", "trade_dt", True), ("file_tm", "file_tm", True), ("event_type", "rec_type", True),
                    ("symbol", "symbol", True), ("event_tm", "event_tm", True),
                    ("event_seq_nb", "event_seq_nb", False), ("exchange", "exchange", True),
                    ("bid_pr", "bid_pr", False), ("bid_size", "bid_size", False),
                    ("ask_pr", "ask_pr", False), ("ask_size", "ask_size", False))}

_HMS = pa.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)], LS)
_FRAC = pa.array([(f"{ms:03d}".rstrip("0") or "0") for ms in range(1000)], LS)


def lit(text: str) -> pa.Scalar:
    return pa.scalar(text, LS)


def join(parts: list[pa.Array | pa.Scalar], sep: str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, lit(sep))


def timestamps(day: str, ms_of_day: np.ndarray) -> pa.Array:
    """'YYYY-MM-DD HH:MM:SS.f' (1-3 fraction digits) via lookup tables: strftime is far slower."""
    ms = np.asarray(ms_of_day, dtype=np.int64)
    return join([lit(day + " "), _HMS.take(pa.array(ms // 1000)), lit("."), _FRAC.take(pa.array(ms % 1000))],
                "")


def fmt_ms(day: str, ms: int) -> str:
    return f"{day} {ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}." + (
        f"{ms % 1000:03d}".rstrip("0") or "0")


def numbers(values: np.ndarray) -> pa.Array:
    """Shortest round-trip text of floats, or plain integers."""
    return pa.array(values).cast(LS)


def lines(fmt: str, rec: str, fields: dict[str, pa.Array | pa.Scalar]) -> pa.Array:
    """Vectorised lines of one record type in one format (no trailing newline)."""
    if fmt == "csv":
        return join([fields[f] for f in CSV_ORDER[rec]], ",")
    parts: list[pa.Array | pa.Scalar] = []
    prefix = "{"
    for key, field, quoted in JSON_ORDER[rec]:
        q = '"' if quoted else ""
        parts.append(lit(f'{prefix}"{key}":{q}'))
        parts.append(fields[field])
        prefix = f'{q},'
    parts.append(lit(f'{prefix[:-1]}}}'))
    return join(parts, "")


def render_line(fmt: str, rec: str, fields: dict[str, str], *, quote_all: bool = False) -> str:
    """One line in plain Python; ``rec`` selects the layout (the rec_type text itself may be corrupt)."""
    if fmt == "csv":
        return ",".join(fields[f] for f in CSV_ORDER[rec] if f in fields)
    items = []
    for key, field, quoted in JSON_ORDER[rec]:
        if field not in fields:
            continue
        value = fields[field]
        items.append(f'"{key}":"{value}"' if (quoted or quote_all) else f'"{key}":{value}')
    return "{" + ",".join(items) + "}"


def with_newlines(arr: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(arr, lit(""), lit("\n"))


def raw_bytes(arr: pa.Array) -> memoryview:
    """The concatenated text of a string array (its data buffer between the first and last offset)."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    if data is None:
        return memoryview(b"")
    return memoryview(data)[int(offsets[0]): int(offsets[-1])]
