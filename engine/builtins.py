"""Generic transforms every pipeline needs (nothing domain-specific)."""

from __future__ import annotations

from typing import Any

from engine.errors import TransformError
from engine.registry import transform

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


@transform("read_dataset", description="Read a committed Parquet dataset under the storage root.",
           params_schema=READ_DATASET_SCHEMA, inputs=[])
def read_dataset(ctx, inputs, params):
    from pyspark.sql import functions as F

    partitions = params.get("partitions") or {}
    uri = ctx.dataset_uri(params["path"], _partition_dirs(partitions) if partitions else None)
    if uri is None:
        raise TransformError(f"dataset '{params['path']}' does not exist under the storage root")
    reader = ctx.spark.read.option("basePath", uri)
    if partitions:
        # read only the named partition folders that exist (a missing date is no rows, not an error)
        from pathlib import Path

        paths = [f"{uri}/{d}" for d in _partition_dirs(partitions)]
        if "://" not in uri:
            paths = [p for p in paths if Path(p).exists()]
            _refuse_stray_folders(params["path"], uri, paths)
        df = ctx.spark.read.parquet(uri).limit(0) if not paths else reader.parquet(*paths)
        for col, value in partitions.items():
            values = value if isinstance(value, list) else [value]
            df = df.where(F.col(col).cast("string").isin([str(v) for v in values]))
    else:
        df = ctx.spark.read.parquet(uri)
    if params.get("where"):
        df = df.where(params["where"])
    if params.get("columns"):
        df = df.select(*params["columns"])
    return df
