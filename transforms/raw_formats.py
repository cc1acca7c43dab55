"""Map raw exchange lines (CSV or JSON, one record a line) to the common string fields of validation.

Each function takes a DataFrame with a string column ``value`` (the raw line) and adds ``s_<field>`` for
every field of ``validation.RAW_FIELDS`` plus ``text_ok``, ``parsed``, ``fields_ok``, ``field_detail``,
``values_ok``, ``value_detail`` and ``shape_ok``. Nothing is typed or judged here beyond the format itself;
``validation.classify`` does the rest.

Fast path: nearly every line an exchange writes has one canonical shape. One regular expression over the
whole line recognises it (for JSON it also extracts the values, so Jackson never parses such a line), and
``shape_ok`` tells ``classify`` that every field already has its pattern's shape, so the per-field patterns
are not run again. The fast path only accepts lines whose verdict and typed values the general path gives
identically (tests/transforms/test_validation_properties.py checks both paths against each other); every
other line takes the general path. A fast-path line is also known to be UTF-8 text: the patterns match the
decoded line, in which every invalid byte sequence became U+FFFD, and none of them accepts that character.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from transforms.validation import RAW_FIELDS, SHAPES

# CSV field positions (0-based), per record type.
CSV_COMMON = {"trade_dt": 0, "file_tm": 1, "rec_type": 2, "symbol": 3, "event_tm": 4, "event_seq_nb": 5,
              "exchange": 6}
CSV_TRADE = {"trade_pr": 7, "trade_size": 8}
CSV_QUOTE = {"bid_pr": 7, "bid_size": 8, "ask_pr": 9, "ask_size": 10}
CSV_FIELD_COUNT = {"T": 9, "Q": 11}

# JSON keys: common field -> JSON key, per record type.
JSON_COMMON = {"trade_dt": "trade_dt", "file_tm": "file_tm", "rec_type": "event_type", "symbol": "symbol",
               "event_tm": "event_tm", "event_seq_nb": "event_seq_nb", "exchange": "exchange"}
JSON_TRADE = {"trade_pr": "price", "trade_size": "size", "execution_id": "execution_id"}
JSON_QUOTE = {"bid_pr": "bid_pr", "bid_size": "bid_size", "ask_pr": "ask_pr", "ask_size": "ask_size"}
# The key order exchanges write (trades carry execution_id after symbol); records in another order are valid
# too, only slower to read.
JSON_KEY_ORDER = {
    "T": ("trade_dt", "file_tm", "event_type", "symbol", "execution_id", "event_tm", "event_seq_nb", "exchange",
          "price", "size"),
    "Q": ("trade_dt", "file_tm", "event_type", "symbol", "event_tm", "event_seq_nb", "exchange", "bid_pr",
          "bid_size", "ask_pr", "ask_size"),
}
JSON_KEYS = {"T": tuple(sorted([*JSON_COMMON.values(), *JSON_TRADE.values()])),
             "Q": tuple(sorted([*JSON_COMMON.values(), *JSON_QUOTE.values()]))}


_SENTINEL = '{"\\u0001":""}'
# Jackson's leniencies Spark turns on by default, off: 'single quotes' and the NaN / Infinity / -Infinity tokens
# are not JSON (RFC 8259), so such a line is broken_json, not a record whose symbol reads '"NaN"'
_STRICT_JSON = {"allowSingleQuotes": "false", "allowNonNumericNumbers": "false"}

# -- fast-path patterns (``\z`` is the absolute end: ``$`` would also accept a trailing line terminator) --
_D, _TS, _INT, _DEC = (SHAPES[k] for k in ("date", "timestamp", "int", "decimal"))
_ANY = r"[^,\uFFFD]*"
CSV_CANONICAL = (rf"^{_D},{_TS},(?:T,{_ANY},{_TS},{_INT},{_ANY},{_DEC},{_INT}"
                 rf"|Q,{_ANY},{_TS},{_INT},{_ANY},{_DEC},{_INT},{_DEC},{_INT})\z")

# JSON values the fast path takes as written: strings of printable ASCII without quote or backslash (nothing to
# unescape), integers that are both JSON and INT shaped, JSON numbers (always DECIMAL shaped). Lengths are
# bounded far inside Jackson's limits, so a value Jackson refuses never takes the fast path.
_JSON_TEXT = r'"([\x20\x21\x23-\x5b\x5d-\x7e]{0,1000})"'
_JSON_INT = "(-?(?:0|[1-9][0-9]{0,30}))"
_JSON_NUM = "(-?(?:0|[1-9][0-9]{0,30})(?:[.][0-9]{1,60})?(?:[eE][+-]?[0-9]{1,4})?)"
_JSON_SHAPED = {"trade_dt": f'"({_D})"', "file_tm": f'"({_TS})"', "event_tm": f'"({_TS})"',
                "event_seq_nb": _JSON_INT, "price": _JSON_NUM, "size": _JSON_INT, "bid_pr": _JSON_NUM,
                "bid_size": _JSON_INT, "ask_pr": _JSON_NUM, "ask_size": _JSON_INT}
_SEP = "\u0001"


def _json_canonical() -> tuple[str, str, dict[str, dict[str, int]]]:
    """(pattern, replacement, rec type -> key -> position in the split replacement) of the JSON fast path.

    The pattern is both record types' exchange key order as alternatives; the replacement lists every group
    after a separator, so splitting it gives each value at a fixed position (empty for the other type's groups).
    """
    alternatives, positions, group = [], {}, 0
    for rec_type, order in JSON_KEY_ORDER.items():
        parts, pos = [], {}
        for key in order:
            group += 1
            pos[key] = group
            value = f'"({rec_type})"' if key == "event_type" else _JSON_SHAPED.get(key, _JSON_TEXT)
            parts.append(f'"{key}":{value}')
        alternatives.append(",".join(parts))
        positions[rec_type] = pos
    pattern = r"^\{(?:" + "|".join(alternatives) + r")\}\z"
    replacement = "".join(f"{_SEP}${g}" for g in range(1, group + 1))
    return pattern, replacement, positions


JSON_CANONICAL, _JSON_REPLACEMENT, _JSON_POSITIONS = _json_canonical()


def _bool(c: Column) -> Column:
    return F.coalesce(c, F.lit(False))


def csv_fields(df: DataFrame, *, fast: bool = True) -> DataFrame:
    """Split on commas (no quoting in exchange CSV); field count decides validity per record type."""
    df = df.select("*", F.split(F.col("value"), ",", -1).alias("_arr"))  # split once, read many times
    arr = F.col("_arr")
    n = F.size(arr)
    rec = F.get(arr, CSV_COMMON["rec_type"])
    is_t, is_q = rec == F.lit("T"), rec == F.lit("Q")
    cols: dict[str, Column] = {f: F.get(arr, i) for f, i in CSV_COMMON.items()}
    cols |= {f: F.when(is_t, F.get(arr, i)) for f, i in CSV_TRADE.items()}
    cols |= {f: F.when(is_q, F.get(arr, i)) for f, i in CSV_QUOTE.items()}
    cols["execution_id"] = F.lit(None).cast("string")
    expected = F.when(is_t, F.lit(CSV_FIELD_COUNT["T"])).when(is_q, F.lit(CSV_FIELD_COUNT["Q"]))
    out = df.select(
        "*",
        *[cols[f].alias(f"s_{f}") for f in RAW_FIELDS],
        F.lit(True).alias("parsed"),
        _bool(n == expected).alias("fields_ok"),
        F.format_string("%s record has %d fields, expected %d", rec, n, expected).alias("field_detail"),
        F.lit(True).alias("values_ok"),  # a CSV field is text by construction
        F.lit(None).cast("string").alias("value_detail"),
        _bool(F.col("value").rlike(CSV_CANONICAL) if fast else F.lit(False)).alias("shape_ok"),
    ).drop("_arr")
    return out.withColumn("text_ok", _utf8_ok(F.col("shape_ok")))


def _utf8_ok(known_ok: Column) -> Column:
    """Whether ``value`` is valid UTF-8; lines the fast path took are (see the module docstring)."""
    return F.when(known_ok, F.lit(True)).otherwise(F.is_valid_utf8(F.col("value")))


_STRUCTURED = {"OBJECT": "an object", "ARRAY": "an array", "BOOLEAN": "a boolean"}


def _structured_kind(value: Column) -> Column:
    """'an object', 'an array' or 'a boolean' for such a JSON value (a variant), else null."""
    shape = F.schema_of_variant(value)
    kind = F.lit(None).cast("string")
    for prefix, text in reversed(_STRUCTURED.items()):
        kind = F.when(shape.startswith(prefix), F.lit(text)).otherwise(kind)
    return kind


def _json_values(texts: Column, typed: Column, known_ok: Column) -> tuple[Column, Column]:
    """(values_ok, value_detail) of a parsed JSON object: no value may be an object, array or boolean.

    ``texts`` is the object as a map of value texts, ``typed`` the same object as a map of variants, which keep
    each value's JSON type (the texts cannot tell the string "{}" from the object {}). Where the variant reader
    refuses what the text reader took (duplicate keys inside a nested object), a text starting with '{' or '['
    can only be such a nested value.
    """
    described = F.transform(F.map_entries(typed), lambda e: F.concat(e["key"], F.lit(" is "),
                                                                     _structured_kind(e["value"])))
    problems = F.filter(described, lambda d: d.isNotNull())
    nested = F.filter(F.map_entries(texts), lambda e: e["value"].startswith("{") | e["value"].startswith("["))
    nested_keys = F.transform(nested, lambda e: F.concat(e["key"], F.lit(" is an object or an array")))
    ok = (F.when(known_ok | texts.isNull(), F.lit(True)).when(typed.isNull(), F.size(nested) == 0)
          .otherwise(F.size(problems) == 0))
    shown = F.when(typed.isNull(), nested_keys).otherwise(problems)
    return ok, F.concat(F.lit("a JSON value must be text or a number: "), F.concat_ws(", ", shown))


def json_fields(df: DataFrame, *, fast: bool = True) -> DataFrame:
    """Parse each line as a JSON object of raw value texts; the key set must be exactly the type's keys."""
    value = F.col("value")
    if fast:
        # One pattern both recognises a canonical line and lists its values (see the module docstring).
        df = df.select("*", F.regexp_replace(value, JSON_CANONICAL, _JSON_REPLACEMENT).alias("_r"))
        is_fast = _bool(value.startswith("{") & F.col("_r").startswith(_SEP))
        df = df.select("*", is_fast.alias("_fast"), F.when(is_fast, F.split(F.col("_r"), _SEP, -1)).alias("_fv"))
    else:
        df = df.select("*", F.lit(False).alias("_fast"), F.lit(None).cast("array<string>").alias("_fv"))
    fast_col, fv = F.col("_fast"), F.col("_fv")
    # General path, for the other lines only. Wrapped as '[line, SENTINEL]' so trailing text after the object
    # (which from_json would ignore) breaks the parse or changes the array length: exactly one JSON object per
    # line is accepted.
    wrapped = F.concat(F.lit("["), value, F.lit("," + _SENTINEL + "]"))
    df = df.select("*", F.when(~fast_col, F.from_json(wrapped, "array<map<string,string>>",
                                                       _STRICT_JSON)).alias("_arr"))
    arr = F.col("_arr")
    whole = F.coalesce((F.size(arr) == 2) & (F.map_keys(F.get(arr, 1)) == F.array(F.lit("\u0001"))),
                       F.lit(False))
    parsed = df.select("*", F.when(whole, F.get(arr, 0)).alias("_m"))
    m = F.col("_m")
    # Each value's JSON type, for the (general-path) lines that parsed.
    parsed = parsed.select("*", F.when(m.isNotNull(), F.from_json(value, "map<string,variant>",
                                                                   _STRICT_JSON)).alias("_tv"))
    values_ok, value_detail = _json_values(m, F.col("_tv"), fast_col)
    # A parsed record whose keys come in the exchange's own order is read by position, which is far cheaper
    # than a key lookup per field; any other order is looked up by key. The order is classified once per
    # record (its own column), not once per field.
    orders = list(JSON_KEY_ORDER.items())
    order_code = F.lit(0)
    for code, (_rt, order) in reversed(list(enumerate(orders, start=1))):
        order_code = F.when(F.map_keys(m) == F.array(*[F.lit(k) for k in order]), F.lit(code)).otherwise(order_code)
    parsed = parsed.select("*", F.map_values(m).alias("_vals"), order_code.alias("_order"))
    vals, order_col = F.col("_vals"), F.col("_order")
    key_of = {**JSON_COMMON, **JSON_TRADE, **JSON_QUOTE}

    def fast_value(field: str) -> Column:
        """The field's text on the fast path: its group of the line's record type (the other's is empty)."""
        groups = [F.get(fv, pos[key_of[field]]) for pos in _JSON_POSITIONS.values() if key_of[field] in pos]
        return groups[0] if len(groups) == 1 else F.concat(*groups)

    def parsed_value(field: str) -> Column:
        """The field's raw text: by position when the key order is known, else by key."""
        out = None
        for code, (_rt, order) in enumerate(orders, start=1):
            if key_of[field] in order:
                pos = F.get(vals, order.index(key_of[field]))
                out = F.when(order_col == code, pos) if out is None else out.when(order_col == code, pos)
        return m.getItem(key_of[field]) if out is None else out.otherwise(m.getItem(key_of[field]))

    def field_value(field: str) -> Column:
        return F.when(fast_col, fast_value(field)).otherwise(parsed_value(field))

    rec = field_value("rec_type")
    is_t, is_q = rec == F.lit("T"), rec == F.lit("Q")
    cols: dict[str, Column] = {f: field_value(f) for f in JSON_COMMON}
    cols |= {f: F.when(is_t, field_value(f)) for f in JSON_TRADE}
    cols |= {f: F.when(is_q, field_value(f)) for f in JSON_QUOTE}
    keys = F.sort_array(F.map_keys(m))  # SortArray is compiled; array_sort would run a lambda per comparison
    exact = {rt: keys == F.array(*[F.lit(k) for k in JSON_KEYS[rt]]) for rt in ("T", "Q")}
    in_order = {rt: order_col == code for code, (rt, _order) in enumerate(orders, start=1)}
    fields_ok = (F.when(fast_col, F.lit(True)).when(in_order["T"] & is_t, F.lit(True))
                 .when(in_order["Q"] & is_q, F.lit(True)).otherwise((is_t & exact["T"]) | (is_q & exact["Q"])))
    out = parsed.select(
        "*",
        *[cols[f].alias(f"s_{f}") for f in RAW_FIELDS],
        (fast_col | m.isNotNull()).alias("parsed"),
        _bool(fields_ok).alias("fields_ok"),
        F.concat(F.lit("keys ["), F.concat_ws(",", keys), F.lit("] are not the "), F.coalesce(rec, F.lit("?")),
                 F.lit(" record keys")).alias("field_detail"),
        values_ok.alias("values_ok"),
        value_detail.alias("value_detail"),
        fast_col.alias("shape_ok"),
        _utf8_ok(fast_col).alias("text_ok"),
    )
    return out.drop("_r", "_fast", "_fv", "_m", "_tv", "_arr", "_vals", "_order")


FORMATS: dict[str, Callable[[DataFrame], DataFrame]] = {"csv": csv_fields, "json": json_fields}
