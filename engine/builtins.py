"""Generic transforms every pipeline needs (nothing domain-specific)."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from engine.error_lines import essential_line, is_analysis_error
from engine.errors import TransformError
from engine.partition_values import is_spark_hidden, refuse_foreign_partition_values
from engine.registry import transform
from engine.suggest import closest, did_you_mean

if TYPE_CHECKING:
    from engine.context import PreflightContext, TransformContext


class ParamProblem(TransformError):
    """A param of the step that cannot work (a dataset that is not there, a column it lacks), with its key path
    under the step (``("params", "columns", 6)``): the runner's line then names the spec's file, line and key."""

    def __init__(self, key: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.step_key = key

READ_DATASET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["path"],
    "properties": {
        # format dataset-path: the spec loader checks it stays under the root and that no output overwrites it
        "path": {"type": "string", "minLength": 1, "format": "dataset-path",
                 "description": "dataset path under the storage root"},
        "where": {"type": "string", "description": "Spark SQL filter, e.g. trade_dt = '2020-08-06'"},
        "partitions": {
            "type": "object",
            "description": "partition column -> value or list of values; only these partitions are read",
            "additionalProperties": {"anyOf": [{"type": ["string", "number"]},
                                               {"type": "array", "items": {"type": ["string", "number"]}}]},
        },
        "columns": {"type": "array", "items": {"type": "string"}, "description": "columns to keep"},
    },
}


def _partition_dirs(partitions: dict[str, Any]) -> list[str]:
    dirs = [""]
    for col, value in partitions.items():
        values = value if isinstance(value, list) else [value]
        dirs = [f"{d}/{col}={v}".lstrip("/") for d in dirs for v in values]
    return dirs


def _refuse_stray_folders(dataset: str, uri: str, paths: list[str]) -> None:
    """A folder inside a partition that is no deeper partition (``k=v``) nor hidden, such as a backup copy
    (``trade_dt=2024-01-09/old/``): Spark would read its files as rows of the partition, counting them twice."""
    from pathlib import Path

    stray: list[str] = []
    todo = [Path(p) for p in paths]
    while todo and len(stray) < 3:
        for child in sorted(todo.pop().iterdir()):
            if child.is_dir() and not child.name.startswith((".", "_")):
                if "=" in child.name:
                    todo.append(child)
                else:
                    stray.append(str(child.relative_to(uri)))
    if stray:
        raise TransformError(f"dataset '{dataset}' holds folder(s) that are not partitions: {', '.join(stray)}; "
                             f"their files would be read as rows of the partition (move them out of the dataset)")


SHOWN = 5  # offending folders or files a message names before "and N more"


def _data_files(paths: list[str]) -> Iterator[str]:
    """The files Spark reads under ``paths`` (deeper partitions included): not hidden, not empty."""
    todo = list(reversed(paths))
    while todo:
        with os.scandir(todo.pop()) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in reversed(entries):
            if is_spark_hidden(entry.name):
                continue
            if entry.is_dir():
                todo.append(entry.path)
        for entry in entries:
            if not is_spark_hidden(entry.name) and entry.is_file() and entry.stat().st_size > 0:
                yield entry.path


def _type_name(kind: Any) -> str:
    """An Arrow type as Spark sees it: the encodings that read as the same Spark type compare equal."""
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_large_string(kind):
        kind = pa.string()
    elif pa.types.is_large_binary(kind):
        kind = pa.binary()
    elif pa.types.is_timestamp(kind) and kind.unit in ("ms", "us"):
        kind = pa.timestamp("us", "UTC" if kind.tz else None)
    return str(kind)


def _read_columns(params: dict[str, Any]) -> set[str] | None:
    """Lower-cased names of the columns a read keeps or filters on; None when it keeps them all. A `where` is
    not parsed: each word of it counts as a column, which at worst checks a column the read does not need."""
    if not params.get("columns"):
        return None
    wanted = {c.lower() for c in params["columns"]}
    return wanted | {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", params.get("where") or "")}


def _drift(name: str, cols: dict[str, str], ref: dict[str, str]) -> str:
    missing = [c for c in ref if c not in cols]
    retyped = [c for c in ref if c in cols and cols[c] != ref[c]]
    extra = [c for c in cols if c not in ref]
    them = "it" if len(missing) == 1 else "them"
    said = ([f"has no column {', '.join(missing)} (other files have {them} as "
             f"{', '.join(ref[c] for c in missing)})"] if missing else [])
    said += [f"has {c} as {cols[c]} (other files have it as {ref[c]})" for c in retyped]
    said += [f"has column {c} ({cols[c]}) that other files lack" for c in extra]
    return f"file {name} {', '.join(said)}"


def _refuse_schema_drift(dataset: str, uri: str, paths: list[str], params: dict[str, Any]) -> None:
    """A data file whose schema lacks a column the others have, or has it with another type (a file written by
    hand into a partition): Spark reads every file with the schema of one of them, so the column comes back NULL
    for that file's rows, or the read fails naming no dataset. Reads only the files' footers (pyarrow)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    wanted = _read_columns(params)
    declared = {c.lower() for c in params.get("partitions") or {}}
    schemas: dict[str, dict[str, str]] = {}
    for path in _data_files(paths):
        name = os.path.relpath(path, uri).replace(os.sep, "/")
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowException, OSError) as exc:
            raise TransformError(f"dataset '{dataset}': file {name} is not a Parquet file ({exc}); move it out of "
                                 f"the dataset") from None
        partition_cols = declared | {p.partition("=")[0].lower() for p in name.split("/")[:-1] if "=" in p}
        schemas[name] = {f.name: _type_name(f.type) for f in schema
                         if f.name.lower() not in partition_cols and (wanted is None or f.name.lower() in wanted)}
    # the reference is the schema most files share (the first file's on a tie): the odd file is the one named
    shapes = Counter(tuple(sorted(cols.items())) for cols in schemas.values())
    if len(shapes) < 2:
        return
    ref = dict(shapes.most_common(1)[0][0])
    odd = [_drift(name, cols, ref) for name, cols in schemas.items() if cols != ref]
    more = f"; and {len(odd) - SHOWN} more file(s)" if len(odd) > SHOWN else ""
    raise TransformError(f"dataset '{dataset}': {'; '.join(odd[:SHOWN])}{more}; Spark reads all files with one "
                         f"schema, so these would give NULL or fail the read (move them out of the dataset or "
                         f"rewrite them)")


def _nearby_datasets(ctx: PreflightContext, path: str) -> list[str]:
    """Dataset paths a mistyped ``path`` may have meant: its parent's folders, the top-level ones, and what the
    spec's steps write. Two folder listings at most (cheap on Azure too: no file is read)."""
    parent = path.rpartition("/")[0]
    names = [f"{parent}/{d}" if parent else d for d in ctx.dataset_dirs(parent) if not d.startswith(("_", "."))]
    if parent:
        names += [d for d in ctx.dataset_dirs("") if not d.startswith(("_", "."))]
    return names + list(ctx.written_paths)


# a plain column name (no struct field, backquotes or '*'): what a Parquet footer can tell about
_PLAIN_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _footer_columns(folder: str) -> list[str] | None:
    """The columns Spark reads from the dataset's first data file (the file's own, then the partition folders'
    names), or None when the dataset has no readable data file (the run's own checks name it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = next(_data_files([folder]), None)
    if first is None:
        return None
    name = os.path.relpath(first, folder).replace(os.sep, "/")
    try:
        schema = pq.read_schema(first)
    except (pa.ArrowException, OSError):
        return None
    return [f.name for f in schema] + [p.partition("=")[0] for p in name.split("/")[:-1] if "=" in p]


def _check_columns(dataset: str, folder: str, columns: list[str]) -> None:
    """Each plain name of ``columns`` is a column of the dataset (case-insensitive, as Spark resolves them), read
    from one file's Parquet footer: a typo is refused before Spark starts, with the close name."""
    have = _footer_columns(folder)
    if have is None:
        return
    known = {c.lower() for c in have}
    for i, col in enumerate(columns):
        if not _PLAIN_COLUMN.fullmatch(col) or col.lower() in known:
            continue
        lowered = {c.lower(): c for c in have}
        close = lowered.get(closest(col.lower(), lowered) or "")
        hint = f" (did you mean '{close}'?)" if close else f"; its columns are: {', '.join(have)}"
        raise ParamProblem(("params", "columns", i), f"'{col}' is not a column of dataset '{dataset}'{hint}")


def read_dataset_preflight(ctx: PreflightContext, params: dict[str, Any]) -> None:
    """Before Spark starts: the dataset is under the storage root (or a step of this spec writes it, in this run
    or another), and the ``columns`` it keeps are its columns (local storage: one Parquet footer is read)."""
    path = str(params["path"]).strip().strip("/")
    exists = ctx.dataset_exists(path)
    if ctx.written_by_spec(path) or exists is None:
        return  # written in the run, or not known here: the run itself checks
    if not exists:
        hint = did_you_mean(path, _nearby_datasets(ctx, path))
        raise ParamProblem(("params", "path"), f"dataset '{path}' does not exist under the storage root "
                                               f"({ctx.storage_root or 'see [storage] root'}) and no step of "
                                               f"this pipeline writes it{hint}")
    folder = ctx.local_dataset(path)
    if folder and params.get("columns"):
        _check_columns(path, folder, list(params["columns"]))


def _apply_param(df: Any, param: str, apply: Any) -> Any:
    """``apply(df)`` for the read's ``param``; Spark refusing it (an unknown column in ``where:``) is a
    ParamProblem naming the param, not a bare AnalysisException naming no part of the spec."""
    try:
        return apply(df)
    except Exception as exc:
        if is_analysis_error(exc):
            raise ParamProblem(("params", param), essential_line(exc)) from exc
        raise


@transform("read_dataset", description="Read a committed Parquet dataset under the storage root.",
           params_schema=READ_DATASET_SCHEMA, inputs=[], preflight=read_dataset_preflight)
def read_dataset(ctx: TransformContext, inputs: dict[str, Any], params: dict[str, Any]) -> Any:
    """Spark reads a damaged local dataset without a word (or fails naming neither dataset nor file): the
    cheap checks below refuse it first, naming the folder or file to move out."""
    from pyspark.sql import functions as F

    partitions = params.get("partitions") or {}
    uri = ctx.dataset_uri(params["path"], _partition_dirs(partitions) if partitions else None)
    if uri is None:
        raise ParamProblem(("params", "path"), f"dataset '{params['path']}' does not exist under the storage root")
    reader = ctx.spark.read.option("basePath", uri)
    if partitions:
        # read only the named partition folders that exist (a missing date is no rows, not an error)
        from pathlib import Path

        paths = [f"{uri}/{d}" for d in _partition_dirs(partitions)]
        if "://" not in uri:
            paths = [p for p in paths if Path(p).exists()]
            _refuse_stray_folders(params["path"], uri, paths)
            if paths:
                _refuse_schema_drift(params["path"], uri, paths, params)
            else:  # the schema then comes from the whole dataset
                refuse_foreign_partition_values(params["path"], uri)
        df = ctx.spark.read.parquet(uri).limit(0) if not paths else reader.parquet(*paths)
        for col, value in partitions.items():
            values = value if isinstance(value, list) else [value]
            df = df.where(F.col(col).cast("string").isin([str(v) for v in values]))
    else:
        if "://" not in uri:
            refuse_foreign_partition_values(params["path"], uri)
        df = ctx.spark.read.parquet(uri)
    if params.get("where"):
        df = _apply_param(df, "where", lambda d: d.where(params["where"]))
    if params.get("columns"):
        df = _apply_param(df, "columns", lambda d: d.select(*params["columns"]))
    return df
