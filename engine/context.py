"""What a transform sees of the engine: a Spark session, the run's date and a few services.

Transforms get this object instead of the spec, the tracker or the storage backend, so they stay plain
functions of DataFrames and params.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import TransformError


@dataclass
class TransformContext:
    spark: Any  # pyspark.sql.SparkSession
    date: dt.date | None
    step: str
    log: logging.Logger
    # (rel path under the storage root, partitions or None) -> URI Spark can read; stages blobs when needed
    _dataset_reader: Callable[..., str | None]
    # rel path (under the raw root) -> URI Spark can read, or None when nothing is there
    _raw_reader: Callable[[str], str | None]
    metrics: dict[str, Any] = field(default_factory=dict)
    extras: Mapping[str, Any] = field(default_factory=dict)
    raw_root: str = ""  # where raw input is looked for, as messages name it (e.g. "local folder /data/raw")

    def dataset_uri(self, rel_path: str, partitions: list[str] | None = None) -> str | None:
        """A readable URI of the committed dataset at ``rel_path`` under the storage root, or None.

        ``partitions`` (e.g. ["trade_dt=2020-08-06"]) tells a remote backend which parts to stage.
        """
        if partitions is None:
            return self._dataset_reader(rel_path)
        return self._dataset_reader(rel_path, partitions)

    def raw_uri(self, rel_path: str) -> str | None:
        """A readable URI of the raw-input folder ``rel_path`` under the raw root, or None if absent."""
        return self._raw_reader(rel_path)

    def record(self, key: str, value: Any) -> None:
        """Attach a JSON-serialisable fact (counts by reason...) to this step's run record.

        Checked now, where the transform's author sees which call was wrong: a set, a date or a DataFrame
        would otherwise only break the report at the end of the run.
        """
        if not isinstance(key, str) or not key:
            raise TransformError(f"step '{self.step}': ctx.record key {key!r} is not a non-empty string")
        try:
            json.dumps(value, allow_nan=True)
        except (TypeError, ValueError) as exc:
            kind = f"{type(value).__module__}.{type(value).__qualname__}".removeprefix("builtins.")
            raise TransformError(f"step '{self.step}': ctx.record('{key}', ...) got a {kind}, which is not "
                                 f"JSON-serialisable ({exc}); record numbers, strings, booleans, None, or "
                                 "lists and dicts of them (e.g. sorted(a_set), a_date.isoformat())") from None
        self.metrics[key] = value


@dataclass(frozen=True)
class PreflightContext:
    """What a transform's preflight check sees: no Spark, because it runs before Spark starts.

    A check that can refuse a run cheaply (its raw input is missing) then answers in a second, not after the
    JVM's start-up; the transform itself still checks again when it runs.
    """

    date: dt.date | None
    step: str
    log: logging.Logger
    # rel path under the raw root -> whether anything is there (never stages or downloads)
    _raw_exists: Callable[[str], bool]
    raw_root: str = ""
    # rel path under the raw root -> the files below it (names relative to it; hidden names left out)
    _raw_files: Callable[[str], list[str]] | None = None
    # the storage root's committed datasets, never staged or downloaded (None: not known here)
    _dataset_exists: Callable[[str], bool] | None = None
    _dataset_dirs: Callable[[str], list[str]] | None = None  # rel path -> its sub-folders' names
    _dataset_folder: Callable[[str], str | None] | None = None  # rel path -> its local folder (local storage only)
    storage_root: str = ""
    # datasets the steps of this spec write: one of them may not exist before the run and still be read in it
    written_paths: tuple[str, ...] = ()

    def raw_exists(self, rel_path: str) -> bool:
        """True when the raw-input folder or file ``rel_path`` exists under the raw root."""
        return self._raw_exists(rel_path)

    def raw_files(self, rel_path: str) -> list[str] | None:
        """The files below the raw folder ``rel_path`` (relative to it, sorted), or None when not known here."""
        return None if self._raw_files is None else self._raw_files(rel_path)

    def dataset_exists(self, rel_path: str) -> bool | None:
        """Whether a committed dataset is at ``rel_path`` under the storage root now (None: not known here)."""
        return None if self._dataset_exists is None else self._dataset_exists(rel_path)

    def dataset_dirs(self, rel_path: str) -> list[str]:
        """The sub-folders of ``rel_path`` under the storage root (names; [] when absent or not known here)."""
        return [] if self._dataset_dirs is None else self._dataset_dirs(rel_path)

    def local_dataset(self, rel_path: str) -> str | None:
        """The local folder of the committed dataset ``rel_path``, when the storage root is a local folder and the
        dataset is there (its files may then be read cheaply, e.g. a Parquet footer); else None."""
        return None if self._dataset_folder is None else self._dataset_folder(rel_path)

    def written_by_spec(self, rel_path: str) -> bool:
        """True when a step of this spec writes ``rel_path`` (or a dataset inside it, or one around it)."""
        from engine.spec import path_parts, paths_nest

        parts = path_parts(rel_path)
        return any(paths_nest(parts, path_parts(w)) for w in self.written_paths)
