"""The staged backend's commit point as plain data: how a write changes a dataset's committed state is kept apart
from the transfers so that it can be read, and tested, without a container.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from engine.errors import StorageError
from engine.storage.base import WRITE_MODES, is_owned

MANIFEST_NAME = "_manifest.json"
RUNS_DIR = "_runs"
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class ManifestFile:
    """One committed file: its path inside the dataset folder Spark sees, and the blob that holds it."""

    name: str   # e.g. "trade_dt=2020-08-05/part-00000-....parquet"
    blob: str   # relative to the dataset prefix, e.g. "_runs/<write_id>/trade_dt=2020-08-05/part-..."
    size: int
    etag: str


@dataclass(frozen=True)
class Manifest:
    """The committed state of a dataset: files per partition ("" when unpartitioned)."""

    version: int
    write_id: str
    mode: str
    partition_by: tuple[str, ...]
    partitions: Mapping[str, tuple[ManifestFile, ...]]
    committed_at: str = ""

    def files(self, partitions: Sequence[str] | None = None) -> list[ManifestFile]:
        keys = sorted(self.partitions) if partitions is None or not self.partition_by else sorted(
            k for k in self.partitions if any(k == p.strip("/") or k.startswith(p.strip("/") + "/")
                                              for p in partitions))
        return [f for k in keys for f in self.partitions[k]]

    def referenced_blobs(self) -> set[str]:
        return {f.blob for files in self.partitions.values() for f in files}

    def top_dirs(self) -> list[str]:
        return sorted({k.split("/", 1)[0] for k in self.partitions if k})

    def to_json(self) -> str:
        return json.dumps({
            "format": MANIFEST_FORMAT, "version": self.version, "write_id": self.write_id, "mode": self.mode,
            "partition_by": list(self.partition_by), "committed_at": self.committed_at,
            "partitions": {k: [vars(f) for f in v] for k, v in sorted(self.partitions.items())},
        }, indent=1)

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> Manifest:
        try:
            doc = json.loads(text)
            if doc.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"unknown manifest format {doc.get('format')!r}")
            return cls(version=int(doc["version"]), write_id=str(doc["write_id"]), mode=str(doc["mode"]),
                       partition_by=tuple(doc["partition_by"]), committed_at=str(doc.get("committed_at", "")),
                       partitions={k: tuple(ManifestFile(**f) for f in v) for k, v in doc["partitions"].items()})
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"Azure storage: manifest {where} is unreadable: {exc}") from None


def next_manifest(old: Manifest | None, new_files: Mapping[str, Sequence[ManifestFile]], mode: str,
                  write_id: str, partition_by: Sequence[str], dataset: str, owner: str = "") -> Manifest:
    """The manifest after a write: overwrite replaces all, overwrite_partitions the partitions written,
    append adds (renaming a file whose name is taken). An append with an ``owner`` replaces that owner's files
    in each partition of ``new_files`` (an empty list: the owner's files there go), keeping everyone else's."""
    partition_by = tuple(partition_by)
    if mode not in WRITE_MODES:
        raise StorageError(f"unknown write mode '{mode}' for '{dataset}'; expected one of {', '.join(WRITE_MODES)}")
    merged: dict[str, tuple[ManifestFile, ...]] = {}
    if old is not None and mode != "overwrite":
        if old.partition_by != partition_by and old.partitions:
            raise StorageError(f"dataset '{dataset}' is partitioned by {list(old.partition_by)} but this write "
                               f"uses {list(partition_by)}; write it with mode overwrite to change that")
        merged = dict(old.partitions)
    for key, files in new_files.items():
        if mode == "append" and owner:
            kept = tuple(f for f in merged.get(key, ()) if not is_owned(owner, f.name.rpartition("/")[2]))
            if kept or files:
                merged[key] = kept + tuple(files)
            else:
                merged.pop(key, None)  # the owner's files were all this partition held
        elif mode == "append" and key in merged:
            taken = {f.name for f in merged[key]}
            renamed = []
            for f in files:
                if f.name in taken:
                    head, _, base = f.name.rpartition("/")
                    f = replace(f, name=f"{head}/{write_id}-{base}" if head else f"{write_id}-{base}")
                renamed.append(f)
            merged[key] = merged[key] + tuple(renamed)
        elif mode == "overwrite_partitions" and not partition_by and old is not None:
            merged = {key: tuple(files)}  # unpartitioned: the whole dataset is the one partition
        else:
            merged[key] = tuple(files)
    return Manifest(version=(old.version + 1) if old else 1, write_id=write_id, mode=mode,
                    partition_by=partition_by, partitions=merged,
                    committed_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def partition_blobs(manifest: Manifest | None, new_files: Mapping[str, Any], mode: str) -> dict[str, list[str]]:
    """What a write replaces, as the manifest holds it: the blobs of each partition it writes (of every
    partition for a whole overwrite)."""
    if manifest is None:
        return {}
    keys = manifest.partitions if mode == "overwrite" else [k for k in new_files if k in manifest.partitions]
    return {k: sorted(f.blob for f in manifest.partitions[k]) for k in sorted(keys)}


def partition_key(rel_file: str, partition_by: Sequence[str], dataset: str) -> str:
    """'trade_dt=2020-08-05/part-0.parquet' -> 'trade_dt=2020-08-05' (checked against partition_by)."""
    if not partition_by:
        return ""
    parts = rel_file.split("/")
    if len(parts) <= len(partition_by):
        raise StorageError(f"write to '{dataset}': file '{rel_file}' is not inside partition folders "
                           f"{'/'.join(c + '=...' for c in partition_by)}")
    for col, part in zip(partition_by, parts, strict=False):
        if not part.startswith(col + "="):
            raise StorageError(f"write to '{dataset}': folder '{part}' of '{rel_file}' is not partition "
                               f"column '{col}'")
    return "/".join(parts[:len(partition_by)])


class ManifestConflict(StorageError):
    """Another writer replaced a dataset's manifest between our read and our conditional write."""


_SAFE_ID_RE = re.compile(r"[^A-Za-z0-9._-]+")


def new_write_id(run_id: str) -> str:
    """A write's id, the name of its folder under ``_runs/``: the run id (made safe for a blob name) and a nonce,
    so that two writes of one run never share a folder."""
    return f"{_SAFE_ID_RE.sub('-', run_id).strip('-') or 'run'}-{uuid.uuid4().hex[:8]}"
