"""Record validation rules for raw exchange records, as Spark column expressions.

Ingestion first maps every raw line (CSV or JSON) to the same set of *string* columns (see ``RAW_FIELDS``)
plus the format's checks (is the line UTF-8 text, did it parse, does it have the right fields for its type,
is every value one a field can hold: JSON has objects, arrays and booleans, no field does). ``classify`` then
types the values and gives each record exactly one reason code, or none when the record is valid. The first
failing rule in ``REASONS`` order wins, so a record is explained by its most basic defect.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


@dataclass(frozen=True)
class Reason:
    """One validation rule: its machine-readable code and what it means."""

    code: str
    meaning: str


# Precedence order: the first rule a record fails is its reason.
REASONS: tuple[Reason, ...] = (
    Reason("bad_encoding", "the line is not valid UTF-8 text"),
    Reason("broken_json", "a JSON line that is not a JSON object"),
    Reason("unknown_rec_type", "record type (CSV field 3, JSON event_type) missing or not T/Q"),
    Reason("wrong_field_count", "CSV: not 9 fields (T) / 11 fields (Q); JSON: keys not exactly the type's keys"),
    Reason("bad_json_value", "JSON: a value is an object, array or boolean (every field is text or a number)"),
    Reason("missing_value", "symbol or exchange empty (or JSON null)"),
    Reason("bad_date", "trade_dt is not a valid yyyy-MM-dd date"),
    Reason("bad_timestamp", "file_tm or event_tm is not a valid yyyy-MM-dd HH:mm:ss.f timestamp (1-3 digits)"),
    Reason("bad_number", "event_seq_nb, a size (integers) or a price (finite decimal) does not parse"),
    Reason("non_positive", "a price or size is <= 0"),
    Reason("bid_above_ask", "quote with bid_pr > ask_pr"),
    Reason("date_mismatch", "trade_dt differs from the date of event_tm"),
    Reason("not_run_date", "trade_dt differs from the processing date (the raw folder's date)"),
)
REASON_CODES: tuple[str, ...] = tuple(r.code for r in REASONS)

# The common string columns every format is mapped to before classification.
RAW_FIELDS: tuple[str, ...] = (
    "trade_dt", "file_tm", "rec_type", "symbol", "event_tm", "event_seq_nb", "exchange",
    "trade_pr", "trade_size", "bid_pr", "bid_size", "ask_pr", "ask_size", "execution_id",
)
PRICE_FIELDS_T = ("trade_pr",)
SIZE_FIELDS_T = ("trade_size",)
PRICE_FIELDS_Q = ("bid_pr", "ask_pr")
SIZE_FIELDS_Q = ("bid_size", "ask_size")

# The shape of each kind of field (a format's fast path builds its whole-line patterns from these).
SHAPES: dict[str, str] = {
    "date": r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}",
    "timestamp": r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{1,3}",
    "int": r"[+-]?[0-9]+",
    "decimal": r"[+-]?(?:[0-9]+[.]?[0-9]*|[.][0-9]+)(?:[eE][+-]?[0-9]+)?",
}
# ``\z`` is the absolute end (``$`` would also accept a trailing line terminator such as '\r' or U+0085).
DATE_RE, TS_RE, INT_RE, DECIMAL_RE = (rf"^{SHAPES[k]}\z" for k in ("date", "timestamp", "int", "decimal"))

# Typed columns of a classified record (quote columns are null on trades and vice versa).
TYPED_COLUMNS: tuple[str, ...] = (
    "trade_dt", "rec_type", "symbol", "exchange", "event_tm", "event_seq_nb", "arrival_tm",
    "trade_pr", "trade_size", "bid_pr", "bid_size", "ask_pr", "ask_size", "execution_id",
)


def _s(name: str) -> Column:
    return F.col(f"s_{name}")


def _typed_date(c: Column, shaped: Column) -> Column:
    return F.when(shaped | c.rlike(DATE_RE), c.try_cast("date"))


def _typed_ts(c: Column, shaped: Column) -> Column:
    return F.when(shaped | c.rlike(TS_RE), c.try_cast("timestamp_ntz"))


def _typed_long(c: Column, shaped: Column) -> Column:
    return F.when(shaped | c.rlike(INT_RE), c.try_cast("bigint"))


def _typed_double(c: Column, shaped: Column) -> Column:
    v = c.try_cast("double")
    return F.when((shaped | c.rlike(DECIMAL_RE)) & (F.abs(v) < F.lit(float("inf"))), v)


def _fields_where(cond_by_field: dict[str, Column], *, values: bool = True) -> Column:
    """The fields whose condition holds, each with its raw text (``trade_pr '12,5'``), for the human-readable
    detail; ``values=False`` names them only (an empty value has nothing to show)."""
    def shown(name: str) -> Column:
        if not values:
            return F.lit(name)
        return F.concat(F.lit(f"{name} '"), F.coalesce(_s(name), F.lit("")), F.lit("'"))

    return F.concat_ws(", ", *[F.when(cond, shown(name)) for name, cond in cond_by_field.items()])


def classify(df: DataFrame, run_date: dt.date | None, *, with_detail: bool = True) -> DataFrame:
    """Add typed columns (``TYPED_COLUMNS``), ``reason`` (a code of ``REASON_CODES`` or null) and ``detail``.

    ``df`` must hold ``s_<field>`` string columns for every field of ``RAW_FIELDS`` plus booleans
    ``text_ok`` (the line is valid UTF-8), ``parsed`` (the line is well-formed for its format), ``fields_ok``
    (right field count/keys for the record type) and ``values_ok`` (every value is one a field can hold), with
    the strings ``field_detail`` and ``value_detail`` explaining the last two. Other columns are passed through.
    ``with_detail=False`` leaves ``detail`` out: the bulk path skips it (smaller generated code, which the JIT
    compiles) and details are built for bad lines only.
    An optional boolean ``shape_ok`` says that the format has already matched every field of the record's type
    against its ``SHAPES`` pattern, so those patterns are not run again (casts and every rule still are).
    """
    shaped = F.coalesce(F.col("shape_ok"), F.lit(False)) if "shape_ok" in df.columns else F.lit(False)
    rec = _s("rec_type")
    is_t = rec == F.lit("T")
    is_q = rec == F.lit("Q")
    typed = df.select(
        "*",
        _typed_date(_s("trade_dt"), shaped).alias("trade_dt"),
        rec.alias("rec_type"),
        _s("symbol").alias("symbol"),
        _s("exchange").alias("exchange"),
        _typed_ts(_s("event_tm"), shaped).alias("event_tm"),
        _typed_long(_s("event_seq_nb"), shaped).alias("event_seq_nb"),
        _typed_ts(_s("file_tm"), shaped).alias("arrival_tm"),
        F.when(is_t, _typed_double(_s("trade_pr"), shaped)).alias("trade_pr"),
        F.when(is_t, _typed_long(_s("trade_size"), shaped)).alias("trade_size"),
        F.when(is_q, _typed_double(_s("bid_pr"), shaped)).alias("bid_pr"),
        F.when(is_q, _typed_long(_s("bid_size"), shaped)).alias("bid_size"),
        F.when(is_q, _typed_double(_s("ask_pr"), shaped)).alias("ask_pr"),
        F.when(is_q, _typed_long(_s("ask_size"), shaped)).alias("ask_size"),
        F.when(is_t, _s("execution_id")).alias("execution_id"),
    )
    c = F.col
    num_fields_t = ("trade_pr", "trade_size")
    num_fields_q = ("bid_pr", "bid_size", "ask_pr", "ask_size")
    bad_num = {"event_seq_nb": c("event_seq_nb").isNull()}
    bad_num |= {f: (is_t & c(f).isNull()) for f in num_fields_t}
    bad_num |= {f: (is_q & c(f).isNull()) for f in num_fields_q}
    non_pos = {f: (is_t & (c(f) <= 0)) for f in num_fields_t}
    non_pos |= {f: (is_q & (c(f) <= 0)) for f in num_fields_q}
    any_bad_num = F.greatest(*bad_num.values())
    any_non_pos = F.greatest(*non_pos.values())
    bad_ts = {"file_tm": c("arrival_tm").isNull(), "event_tm": c("event_tm").isNull()}
    empty = {f: F.coalesce(_s(f), F.lit("")) == F.lit("") for f in ("symbol", "exchange")}
    event_date = F.to_date(c("event_tm"))

    checks: list[tuple[str, Column, Column]] = [
        ("bad_encoding", ~c("text_ok"),
         F.lit("the line is not valid UTF-8 (raw_line shows each invalid byte sequence as U+FFFD)")),
        ("broken_json", ~c("parsed"), F.lit("line is not a JSON object")),
        ("unknown_rec_type", ~F.coalesce(is_t | is_q, F.lit(False)),
         F.concat(F.lit("record type '"), F.coalesce(rec, F.lit("<missing>")), F.lit("' is not T or Q"))),
        ("wrong_field_count", ~c("fields_ok"), c("field_detail")),
        ("bad_json_value", ~c("values_ok"), c("value_detail")),
        ("missing_value", F.greatest(*empty.values()),
         F.concat(F.lit("empty: "), _fields_where(empty, values=False))),
        ("bad_date", c("trade_dt").isNull(),
         F.concat(F.lit("trade_dt '"), F.coalesce(_s("trade_dt"), F.lit("<null>")),
                  F.lit("' is not a yyyy-MM-dd date"))),
        ("bad_timestamp", F.greatest(*bad_ts.values()),
         F.concat(F.lit("not a yyyy-MM-dd HH:mm:ss.f timestamp (1-3 fractional digits): "),
                  _fields_where(bad_ts))),
        ("bad_number", any_bad_num, F.concat(F.lit("unparseable number: "), _fields_where(bad_num))),
        ("non_positive", any_non_pos, F.concat(F.lit("not positive: "), _fields_where(non_pos))),
        ("bid_above_ask", is_q & (c("bid_pr") > c("ask_pr")),
         F.format_string("bid_pr %s > ask_pr %s", _s("bid_pr"), _s("ask_pr"))),
        ("date_mismatch", c("trade_dt") != event_date,
         F.format_string("trade_dt %s != date of event_tm %s", c("trade_dt").cast("string"),
                         event_date.cast("string"))),
    ]
    if run_date is not None:
        checks.append(("not_run_date", c("trade_dt") != F.lit(run_date),
                       F.format_string("trade_dt %s is not the processing date %s",
                                       c("trade_dt").cast("string"), F.lit(run_date.isoformat()))))
    reason: Column = F.lit(None).cast("string")
    for code, cond, _text in reversed(checks):
        reason = F.when(cond, F.lit(code)).otherwise(reason)
    typed = typed.withColumn("reason", reason)
    if not with_detail:
        return typed
    # The detail is built from the reason in a second projection, so the rule conditions are evaluated
    # once per record (valid records, the bulk, never build a detail string).
    detail: Column = F.lit(None).cast("string")
    for code, _cond, text in reversed(checks):
        detail = F.when(c("reason") == F.lit(code), text).otherwise(detail)
    return typed.withColumn("detail", detail)
