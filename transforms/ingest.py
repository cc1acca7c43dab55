"""Ingest one processing date of raw exchange files into typed events and a quarantine of bad records.

Reads ``<raw>/<folder>/<date>/<exchange>/part-*`` for each configured source (CSV or JSON) with Spark's text
reader, maps lines to the common fields, classifies them (transforms.validation), and computes every count
(lines per file, bad per reason, line numbers) in ONE aggregation over the persisted classified data, so the
raw text is read exactly once. The engine writes the two returned DataFrames.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import re
import stat
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from engine.errors import TransformError
from engine.registry import transform
from transforms.raw_formats import FORMATS
from transforms.validation import REASON_CODES, TYPED_COLUMNS, classify

EVENT_COLUMNS: tuple[str, ...] = (*TYPED_COLUMNS, "source_file", "line_no")
QUARANTINE_COLUMNS: tuple[str, ...] = ("source_file", "line_no", "raw_line", "reason", "detail", "partition",
                                       "trade_dt")
_CHUNK_KEY = ("source_file", "_block", "_pid")

EVENT_SCHEMA = T.StructType([
    T.StructField("trade_dt", T.DateType()), T.StructField("rec_type", T.StringType()),
    T.StructField("symbol", T.StringType()), T.StructField("exchange", T.StringType()),
    T.StructField("event_tm", T.TimestampNTZType()), T.StructField("event_seq_nb", T.LongType()),
    T.StructField("arrival_tm", T.TimestampNTZType()), T.StructField("trade_pr", T.DoubleType()),
    T.StructField("trade_size", T.LongType()), T.StructField("bid_pr", T.DoubleType()),
    T.StructField("bid_size", T.LongType()), T.StructField("ask_pr", T.DoubleType()),
    T.StructField("ask_size", T.LongType()), T.StructField("execution_id", T.StringType()),
    T.StructField("source_file", T.StringType()), T.StructField("line_no", T.LongType()),
])
QUARANTINE_SCHEMA = T.StructType([
    T.StructField("source_file", T.StringType()), T.StructField("line_no", T.LongType()),
    T.StructField("raw_line", T.StringType()), T.StructField("reason", T.StringType()),
    T.StructField("detail", T.StringType()), T.StructField("partition", T.StringType()),
    T.StructField("trade_dt", T.DateType()),
])


@dataclass(frozen=True)
class IngestCounts:
    """What one aggregation over the classified records tells: the facts recorded with the run."""

    lines_by_file: dict[str, int]
    bad_by_file: dict[str, int]
    bad_by_reason: dict[str, int]
    valid: int
    bad: int

    @property
    def lines(self) -> int:
        return sum(self.lines_by_file.values())


def _run_date(ctx: Any, params: Mapping[str, Any]) -> dt.date:
    text = params.get("date")
    if text:
        try:
            return dt.date.fromisoformat(str(text))
        except ValueError as exc:
            raise TransformError(f"ingest: params.date '{text}' is not a YYYY-MM-DD date") from exc
    if ctx.date is None:
        raise TransformError("ingest: no processing date (run with --date or set params.date)")
    return ctx.date


def _source_folders(folder: str, day: str, exchanges: Sequence[str] | None) -> list[str]:
    """The raw folders (relative to the raw root) one source reads for ``day``."""
    return [f"{folder}/{day}/{ex}" for ex in exchanges] if exchanges else [f"{folder}/{day}"]


def _sources(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(folder, format) of each configured source; TransformError for a format no reader exists for."""
    sources = params.get("sources") or [{"folder": "csv", "format": "csv"}, {"folder": "json", "format": "json"}]
    out = []
    for src in sources:
        folder, fmt = str(src["folder"]), str(src.get("format", src["folder"]))
        if fmt not in FORMATS:
            raise TransformError(f"ingest: unknown format '{fmt}' for folder '{folder}'; expected one of "
                                 f"{', '.join(FORMATS)}")
        out.append((folder, fmt))
    return out


def _no_input(day: str, looked: Sequence[str], raw_root: str) -> str:
    return (f"ingest {day}: no raw input under {', '.join(looked)} of the raw root "
            f"({raw_root or 'see [storage] raw_root'})")


def _nothing_matches(day: str, looked: Sequence[str], glob: str, not_read: Sequence[str]) -> str:
    return (f"ingest {day}: no file under {', '.join(looked)} matches file_glob '{glob}'"
            + (f" ({len(not_read)} other file(s) there, e.g. {sorted(not_read)[0]})" if not_read else ""))


# A glob of literal characters, '*' and '?' means the same to Hadoop's GlobFilter and to fnmatch; classes,
# alternatives and escapes ([...], {a,b}, \) are left to the reader's own check once Spark runs.
_SIMPLE_GLOB = re.compile(r"[^\[\]{}\\]*")


def ingest_preflight(ctx: Any, params: Mapping[str, Any]) -> None:
    """Refuses a date without any raw folder, or whose folders hold no file the glob takes, before Spark starts
    (the run would fail on it later, after the JVM's start-up)."""
    day = _run_date(ctx, params).isoformat()
    sources = _sources(params)
    if not params.get("require_input", True):
        return
    exchanges = params.get("exchanges")
    found = [rel for folder, _fmt in sources for rel in _source_folders(folder, day, exchanges)
             if ctx.raw_exists(rel)]
    looked = [f"{folder}/{day}" for folder, _fmt in sources]
    if not found:
        raise TransformError(_no_input(day, looked, ctx.raw_root))
    glob = str(params.get("file_glob", "part-*"))
    listed = {rel: ctx.raw_files(rel) for rel in found} if _SIMPLE_GLOB.fullmatch(glob) else {}
    if not listed or any(names is None for names in listed.values()):
        return
    files = [f"{rel}/{name}" for rel, names in listed.items() for name in names or ()]
    if not any(fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], glob) for path in files):
        raise TransformError(_nothing_matches(day, looked, glob, files))


@dataclass(frozen=True)
class SourceFiles:
    """What a source's date folders hold: the files the glob takes, and those it leaves (paths as source_file)."""

    read: tuple[str, ...]
    not_read: tuple[str, ...]


def _list_files(spark: Any, uris: list[str], rel_folders: list[str], glob: str) -> SourceFiles:
    """Every file under ``uris`` (each the readable form of the raw folder in ``rel_folders``), split by ``glob``.

    Hadoop's own file system and glob filter, as the text reader uses them, so that local, staged and abfss
    raw roots are listed alike and "matches" means what it means to the reader. Hidden files and folders (names
    starting with '.' or '_', e.g. checksums, _SUCCESS, _temporary) are neither: the reader never takes them.
    """
    jvm = spark._jvm
    conf = spark._jsc.hadoopConfiguration()
    accept = jvm.org.apache.hadoop.fs.GlobFilter(glob)
    read: list[str] = []
    not_read: list[str] = []
    for uri, rel in zip(uris, rel_folders, strict=True):
        base = jvm.org.apache.hadoop.fs.Path(uri)
        fs = base.getFileSystem(conf)
        prefix = fs.makeQualified(base).toString().rstrip("/") + "/"
        files = fs.listFiles(base, True)
        while files.hasNext():
            path = files.next().getPath()
            inner = path.toString().removeprefix(prefix)
            if any(part.startswith((".", "_")) for part in inner.split("/")):
                continue  # in a hidden folder (e.g. _temporary) or itself hidden
            (read if accept.accept(path) else not_read).append(f"{rel}/{inner}")
    return SourceFiles(tuple(sorted(read)), tuple(sorted(not_read)))


def _local_folder(uri: str) -> str | None:
    """The local path of a raw folder's URI (None for a remote store, which has no links or special files)."""
    if uri.startswith("file:"):
        return "/" + uri.removeprefix("file:").lstrip("/")
    return None if "://" in uri else uri


def _not_plain_files(uris: list[str], rel_folders: list[str]) -> tuple[list[str], dict[str, str]]:
    """(links to folders, {file: why}) below local raw folders: what the reader would follow into (a folder
    read twice, or another date's), and entries it skips without a word (links to nothing, FIFOs, devices)."""
    folder_links: list[str] = []
    odd: dict[str, str] = {}
    for uri, rel in zip(uris, rel_folders, strict=True):
        base = _local_folder(uri)
        if base is None:
            continue
        for dirpath, dirnames, filenames in os.walk(base):  # links to folders are listed, not entered
            inner = os.path.relpath(dirpath, base).replace(os.sep, "/")
            where = rel if inner == "." else f"{rel}/{inner}"
            dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
            for name in dirnames:
                if os.path.islink(os.path.join(dirpath, name)):
                    folder_links.append(f"{where}/{name} -> {os.readlink(os.path.join(dirpath, name))}")
            for name in filenames:
                if name.startswith((".", "_")):
                    continue
                try:
                    mode = os.stat(os.path.join(dirpath, name)).st_mode
                except OSError:
                    odd[f"{where}/{name}"] = "a link to nothing"
                    continue
                if not stat.S_ISREG(mode):
                    odd[f"{where}/{name}"] = "not a regular file"
    return sorted(folder_links), odd


def _report_unread(ctx: Any, day: str, glob: str, not_read: list[str], odd: Mapping[str, str]) -> None:
    """Files the glob leaves out, and entries that are no files, are named: a day is never short of a file
    without a word."""
    ctx.record("files_not_read", sorted({*not_read, *odd}))
    unmatched = sorted(set(not_read) - set(odd))
    if unmatched:
        shown = ", ".join(unmatched[:5]) + (f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else "")
        ctx.log.warning("ingest %s: %d file(s) under the date's raw folders do not match file_glob '%s' and "
                        "were not read: %s", day, len(unmatched), glob, shown)
    if odd:
        named = [f"{path} ({why})" for path, why in sorted(odd.items())]
        shown = ", ".join(named[:5]) + (f" and {len(named) - 5} more" if len(named) > 5 else "")
        ctx.log.warning("ingest %s: %d entr%s under the date's raw folders %s no readable file and %s not "
                        "read: %s", day, len(odd), "y" if len(odd) == 1 else "ies", "is" if len(odd) == 1
                        else "are", "was" if len(odd) == 1 else "were", shown)


def _read_source(ctx: Any, uris: list[str], folder: str, day: str, fmt: str, glob: str) -> DataFrame:
    """Raw lines with their file (relative to the raw root) and position keys, mapped to common fields."""
    text = (ctx.spark.read.option("recursiveFileLookup", "true").option("pathGlobFilter", glob)
            .option("lineSep", "\n").text(uris))
    prefix = f"{folder}/{day}/"
    # the file's path is a URI: a name holding a space, '%', '#', '[' ... is percent-encoded there ('+' is not)
    path = F.col("_metadata.file_path")
    decoded = F.when(path.contains("%"), F.url_decode(F.regexp_replace(path, "[+]", "%2B"))).otherwise(path)
    lines = text.select(
        F.col("value"),
        F.concat(F.lit(prefix), F.substring_index(decoded, f"/{prefix}", -1)).alias("source_file"),
        F.col("_metadata.file_block_start").alias("_block"),
        F.spark_partition_id().alias("_pid"),
        F.monotonically_increasing_id().alias("_id"),
    )
    # strip a Windows line ending so '\r\n' files parse like '\n' files
    value = F.col("value")
    stripped = F.when(value.endswith("\r"), F.expr("substring(value, 1, length(value) - 1)")).otherwise(value)
    lines = lines.withColumn("value", stripped).withColumn("_fmt", F.lit(fmt))
    return FORMATS[fmt](lines)


def _with_detail(bad: DataFrame, formats: list[str], run_date: dt.date | None) -> DataFrame:
    """Re-parse the (few) bad lines to explain them: the bulk path computes reasons only."""
    parts = []
    for fmt in dict.fromkeys(formats):
        lines = bad.where(F.col("_fmt") == fmt).withColumnRenamed("raw_line", "value")
        # a line that is not UTF-8 is kept with each invalid byte sequence as U+FFFD: a string column holds text
        explained = classify(FORMATS[fmt](lines), run_date).select(
            "source_file", "line_no", F.make_valid_utf8("value").alias("raw_line"), "reason", "detail")
        parts.append(explained)
    return reduce(DataFrame.unionByName, parts)


def _aggregate(classified: DataFrame) -> tuple[IngestCounts, list[tuple[str, int, int, int]]]:
    """One pass: per (file chunk, reason) count and first row id -> counts and each chunk's line-number base."""
    rows = (classified.groupBy(*_CHUNK_KEY, "reason")
            .agg(F.count(F.lit(1)).alias("n"), F.min("_id").alias("first_id")).collect())
    lines_by_file: dict[str, int] = defaultdict(int)
    bad_by_file: dict[str, int] = defaultdict(int)
    bad_by_reason: dict[str, int] = {code: 0 for code in REASON_CODES}
    chunk_n: dict[tuple[str, int, int], int] = defaultdict(int)
    chunk_first: dict[tuple[str, int, int], int] = {}
    valid = bad = 0
    for r in rows:
        key = (r["source_file"], int(r["_block"]), int(r["_pid"]))
        n = int(r["n"])
        chunk_n[key] += n
        chunk_first[key] = min(chunk_first.get(key, r["first_id"]), r["first_id"])
        lines_by_file[r["source_file"]] += n
        if r["reason"] is None:
            valid += n
        elif r["reason"] in bad_by_reason:
            bad_by_reason[r["reason"]] += n
            bad_by_file[r["source_file"]] += n
            bad += n
    # chunks of one file in file order (by block start); a chunk's rows are consecutive ids in its partition
    bases: list[tuple[str, int, int, int]] = []
    seen: dict[str, int] = defaultdict(int)
    for key in sorted(chunk_n, key=lambda k: (k[0], k[1])):
        bases.append((*key, seen[key[0]] + 1 - chunk_first[key]))
        seen[key[0]] += chunk_n[key]
    counts = IngestCounts(dict(lines_by_file), dict(bad_by_file), bad_by_reason, valid, bad)
    return counts, bases


def _check(counts: IngestCounts, max_bad_share: float, day: str) -> None:
    if counts.valid + counts.bad != counts.lines:
        raise TransformError(f"ingest {day}: valid {counts.valid} + bad {counts.bad} != lines read "
                             f"{counts.lines} (a record was dropped or classified twice)")
    worst = sorted(((counts.bad_by_file.get(f, 0) / n, f) for f, n in counts.lines_by_file.items() if n),
                   reverse=True)
    over = [(share, f) for share, f in worst if share > max_bad_share]
    if over:
        share, f = over[0]
        raise TransformError(
            f"ingest {day}: {len(over)} file(s) exceed max_bad_share {max_bad_share:.2%}; worst {f}: "
            f"{counts.bad_by_file[f]} of {counts.lines_by_file[f]} records bad ({share:.2%})")


def _record(ctx: Any, counts: IngestCounts, day: str) -> None:
    ctx.record("lines_read", counts.lines)
    ctx.record("valid", counts.valid)
    ctx.record("bad", counts.bad)
    ctx.record("bad_by_reason", {k: v for k, v in counts.bad_by_reason.items() if v})
    ctx.record("files", len(counts.lines_by_file))
    reasons = ", ".join(f"{k}={v}" for k, v in counts.bad_by_reason.items() if v) or "none"
    ctx.log.info("ingest %s: %d lines in %d files, %d valid, %d bad (%s)", day, counts.lines,
                 len(counts.lines_by_file), counts.valid, counts.bad, reasons)


def _empty(ctx: Any) -> dict[str, DataFrame]:
    spark = ctx.spark
    return {"events": spark.createDataFrame([], EVENT_SCHEMA),
            "quarantine": spark.createDataFrame([], QUARANTINE_SCHEMA)}


def ingest_frames(ctx: Any, params: Mapping[str, Any]) -> dict[str, DataFrame]:
    """The transform's body, callable directly (tests, other plugins)."""
    run_date = _run_date(ctx, params)
    day = run_date.isoformat()
    glob = str(params.get("file_glob", "part-*"))
    parts: list[DataFrame] = []
    looked: list[str] = []
    formats: list[str] = []
    not_read: list[str] = []
    odd: dict[str, str] = {}
    folders_found = False
    for folder, fmt in _sources(params):
        looked.append(f"{folder}/{day}")
        found = [(rel, uri) for rel in _source_folders(folder, day, params.get("exchanges"))
                 if (uri := ctx.raw_uri(rel))]
        folders_found = folders_found or bool(found)
        if not found:
            continue
        uris = [uri for _rel, uri in found]
        folder_links, odd_here = _not_plain_files(uris, [rel for rel, _uri in found])
        if folder_links:
            more = f" (and {len(folder_links) - 1} more)" if len(folder_links) > 1 else ""
            raise TransformError(
                f"ingest {day}: {folder_links[0]}{more} is a link to a folder: the reader would read that folder "
                f"too (another date's files, or this date's twice); replace the link by the files it should add, "
                f"or remove it")
        odd.update(odd_here)
        listed = _list_files(ctx.spark, uris, [rel for rel, _uri in found], glob)
        not_read += listed.not_read
        if listed.read:
            parts.append(_read_source(ctx, uris, folder, day, fmt, glob))
            formats.append(fmt)
    _report_unread(ctx, day, glob, not_read, odd)
    if not parts:
        message = _no_input(day, looked, getattr(ctx, "raw_root", ""))
        if folders_found:  # the folders are there, but nothing in them is read
            message = _nothing_matches(day, looked, glob, not_read)
        if params.get("require_input", True):
            raise TransformError(message)
        ctx.log.warning("%s", message)
        return _empty(ctx)
    lines = reduce(DataFrame.unionByName, parts)
    check_date = run_date if params.get("check_run_date", True) else None
    classified = classify(lines, check_date, with_detail=False).select(
        *_CHUNK_KEY, "_id", *TYPED_COLUMNS, "reason", "_fmt",
        F.when(F.col("reason").isNotNull(), F.col("value")).alias("raw_line"),
    ).persist(StorageLevel.MEMORY_AND_DISK)
    counts, bases = _aggregate(classified)
    _record(ctx, counts, day)
    _check(counts, float(params.get("max_bad_share", 0.05)), day)

    # One base per chunk. Grouped by the chunk key, so Spark knows the key is unique and drops this (left) join
    # from every query that does not read line_no: writing trades and quotes, counting keys.
    base_df = F.broadcast(ctx.spark.createDataFrame(
        bases, "source_file string, _block bigint, _pid int, _base bigint").groupBy(*_CHUNK_KEY).agg(
        F.max("_base").alias("_base")))
    numbered = classified.join(base_df, on=list(_CHUNK_KEY), how="left").withColumn(
        "line_no", F.col("_id") + F.col("_base"))
    events = numbered.where(F.col("reason").isNull()).select(*EVENT_COLUMNS)
    # the few bad records, kept so that explaining them per format scans the classified data once, not per format
    bad = (numbered.where(F.col("reason").isNotNull()).select("source_file", "line_no", "raw_line", "_fmt")
           .persist(StorageLevel.MEMORY_AND_DISK))
    quarantine = _with_detail(bad, formats, check_date).select(
        "source_file", "line_no", "raw_line", "reason", "detail", F.lit("B").alias("partition"),
        F.lit(run_date).alias("trade_dt"))
    return {"events": events, "quarantine": quarantine}


@transform(
    "ingest_raw",
    description="Read a date's raw CSV/JSON exchange files, validate every record, split valid and bad.",
    params_schema="ingest_raw.json",
    inputs=[],
    outputs=["events", "quarantine"],
    preflight=ingest_preflight,
)
def ingest_raw(ctx: Any, inputs: Mapping[str, DataFrame], params: Mapping[str, Any]) -> dict[str, DataFrame]:
    """Valid records as typed events (one common schema for trades and quotes) and the quarantine."""
    return ingest_frames(ctx, params)
