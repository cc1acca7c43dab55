"""Azure Blob Storage backend, staged mode: Spark works on local copies, the container holds the truth.

Spark here has no hadoop-azure jars, so inputs are downloaded to a local cache (in parallel, skipping blobs
whose ETag did not change) and outputs are written locally, then uploaded. Container layout of a dataset:

    <prefix>/<dataset>/_manifest.json                the commit point, written last
    <prefix>/<dataset>/_runs/<write_id>/<files>      the files of each write (partition sub-folders kept)

A write uploads all its files under a fresh ``_runs/<write_id>/`` and then replaces ``_manifest.json``
(conditional on the ETag it read, so concurrent committers cannot silently lose each other's data). A
manifest lists, per partition, which blobs make up the committed dataset; readers only ever look at blobs a
manifest names, so a killed upload is invisible, and the next commit deletes unreferenced blobs. Several
writes published as one (a step's outputs) are journaled in ``<prefix>/_journals/`` while their manifests change.
Raw folders (exchange files) have no manifest: every blob under the prefix is the data.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import requests.adapters
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobPrefix, ContainerClient, ContentSettings, ExponentialRetry

from engine.config import AzureConfig, Config
from engine.deferred_signals import signals_deferred
from engine.errors import ConfigError, StorageError
from engine.processes import pid_alive
from engine.storage.azure_errors import AzureWhere, azure_secrets, scrub, translate_errors
from engine.storage.azure_uri import (
    AzureLocation,
    account_from_endpoint,
    clean_rel_path,
    parse_azure_uri,
    parse_connection_string,
)
from engine.storage.base import (
    WRITE_MODES,
    FileStamp,
    PendingWrite,
    Storage,
    check_write_mode,
    is_hidden_path,
    is_owned,
    owned_name,
)

log = logging.getLogger(__name__)

MANIFEST_NAME = "_manifest.json"
RUNS_DIR = "_runs"
# <prefix>/_journals/<host>-<pid>-<id>.json: a commit of several writes in progress (see commit_all)
JOURNALS_DIR = "_journals"
MANIFEST_FORMAT = 1
_CACHE_LOCK = "cache.lock"
_SAFE_ID_RE = re.compile(r"[^A-Za-z0-9._-]+")
_COMMIT_ATTEMPTS = 5


# ---------------------------------------------------------------------------------------------- connection

@dataclass(frozen=True)
class RetrySettings:
    """The SDK's ExponentialRetry (5xx, timeouts, connection resets) and the transport timeouts."""

    total: int = 4
    initial_backoff: float = 1.0
    increment_base: float = 2.0
    jitter: float = 0.5
    connection_timeout: float = 10.0
    read_timeout: float = 120.0


@dataclass(frozen=True)
class AzureTarget:
    """A resolved root: which account/container/prefix, the blob endpoint, and how to authenticate."""

    account: str
    container: str
    prefix: str
    endpoint: str
    credential: Any = field(default=None, repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    location: AzureLocation | None = None

    @property
    def where(self) -> AzureWhere:
        return AzureWhere(self.account, self.container, self.endpoint)

    def blob_path(self, rel_path: str) -> str:
        rel = clean_rel_path(rel_path)
        return "/".join(p for p in (self.prefix, rel) if p)


def resolve_target(root_uri: str, az: AzureConfig | None) -> AzureTarget:
    """Combine the root URI with ``[azure]``: account, key or connection string, endpoint."""
    if az is None:
        raise ConfigError(f"storage root '{root_uri}' is in Azure but the config has no [azure] section "
                          f"(storage_account and access_key, or connection_string)")
    loc = parse_azure_uri(root_uri, default_container=az.container)
    secrets = tuple(azure_secrets(az))
    credential: Any = None
    if az.connection_string:
        parts = parse_connection_string(az.connection_string)
        account = parts.account or az.storage_account or (loc.account or "")
        suffix = parts.endpoint_suffix or "core.windows.net"
        endpoint = az.endpoint or parts.blob_endpoint or f"{parts.protocol}://{account}.blob.{suffix}"
        account = account or account_from_endpoint(endpoint)
        if parts.account_key:
            credential = {"account_name": account, "account_key": parts.account_key}
        elif parts.sas_token:
            credential = parts.sas_token
    else:
        account = az.storage_account or (loc.account or "")
        if not account:
            raise ConfigError(f"storage root '{root_uri}': [azure] storage_account is not set")
        endpoint = az.endpoint or f"https://{account}.blob.core.windows.net"
        if az.access_key:
            credential = {"account_name": account, "account_key": az.access_key}
    if loc.account and account and loc.account != account:
        raise ConfigError(f"storage root '{root_uri}' names account '{loc.account}' but [azure] configures "
                          f"account '{account}'")
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"[azure] endpoint '{endpoint}' must start with http:// or https://")
    return AzureTarget(account=account, container=loc.container, prefix=loc.prefix,
                       endpoint=endpoint.rstrip("/"), credential=credential, secrets=secrets, location=loc)


def build_container_client(target: AzureTarget, retry: RetrySettings, api_version: str | None = None
                           ) -> ContainerClient:
    """A ContainerClient whose retries and timeouts are the SDK's policy, configured here."""
    http_log = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
    if http_log.level == logging.NOTSET:  # one INFO line per request otherwise; headers are redacted anyway
        http_log.setLevel(logging.WARNING)
    policy = ExponentialRetry(initial_backoff=retry.initial_backoff, increment_base=retry.increment_base,
                              retry_total=retry.total, random_jitter_range=retry.jitter)
    kwargs: dict[str, Any] = {"retry_policy": policy, "connection_timeout": retry.connection_timeout,
                              "read_timeout": retry.read_timeout}
    if api_version:
        kwargs["api_version"] = api_version
    kwargs["transport"] = RequestsTransport(session=_pooled_session(), session_owner=True)
    with translate_errors("create the client", target.where, target.secrets):
        return ContainerClient(target.endpoint, target.container, credential=target.credential, **kwargs)


# Transfers at once: 8 per read or write, each blob in up to 2 ranges, two steps reading at a time. The requests
# default keeps 10 connections per host: the rest were dropped after use, each drop logged as a console warning
# ("Connection pool is full, discarding connection").
_POOL_SIZE = 64


def _pooled_session() -> requests.Session:
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=_POOL_SIZE)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class BlobAccess:
    """Thin, error-translating access to one container, shared by the staged and direct backends."""

    def __init__(self, target: AzureTarget, retry: RetrySettings | None = None, api_version: str | None = None):
        self.target = target
        self.client = build_container_client(target, retry or RetrySettings(), api_version)

    def errors(self, action: str):
        return translate_errors(action, self.target.where, self.target.secrets)

    def check(self, action: str = "check the container") -> None:
        """One page of one blob name: a listing is what every read needs, and unlike the container's
        properties a container-scoped SAS (the usual least-privilege grant) may do it."""
        with self.errors(action):
            next(iter(self.client.list_blobs(results_per_page=1).by_page()), None)

    def get_bytes(self, name: str) -> tuple[bytes, str] | None:
        """Content and ETag of a blob, or None when it does not exist."""
        with self.errors(f"read '{name}'"):
            try:
                downloader = self.client.download_blob(name)
                return downloader.readall(), downloader.properties.etag
            except ResourceNotFoundError:
                return None

    def blob_exists(self, name: str) -> bool:
        with self.errors(f"look up '{name}'"):
            return self.client.get_blob_client(name).exists()

    def upload_file(self, name: str, local_file: str | os.PathLike[str]) -> tuple[str, int]:
        """Upload (replacing) one blob; returns its ETag and size."""
        size = os.path.getsize(local_file)
        with self.errors(f"upload '{name}'"), open(local_file, "rb") as fh:
            result = self.client.get_blob_client(name).upload_blob(fh, overwrite=True, length=size,
                                                                   max_concurrency=2)
        return result["etag"], size

    def put_bytes(self, name: str, data: bytes) -> None:
        """Upload (replacing) one small blob from memory."""
        with self.errors(f"upload '{name}'"):
            self.client.get_blob_client(name).upload_blob(data, overwrite=True)

    def copy(self, source: str, dest: str) -> None:
        """Copy one small blob through this process (no server-side copy: that needs the source authorised)."""
        got = self.get_bytes(source)
        if got is None:
            raise StorageError(f"Azure storage: '{source}' vanished before it could be copied ({self.target.where})")
        self.put_bytes(dest, got[0])

    def list_blobs(self, prefix: str, metadata: bool = False) -> list[Any]:
        with self.errors(f"list '{prefix}'"):
            return list(self.client.list_blobs(name_starts_with=prefix,
                                               include=["metadata"] if metadata else None))

    def list_dirs(self, prefix: str, include_hidden: bool = False) -> list[str]:
        """Virtual sub-folders right under ``prefix``; hidden ones ('_', '.') only when asked."""
        start = prefix + "/" if prefix else ""
        with self.errors(f"list '{prefix or '/'}'"):
            names = {item.name[len(start):].strip("/") for item in self.client.walk_blobs(start, delimiter="/")
                     if isinstance(item, BlobPrefix)}
        return sorted(n for n in names if n and (include_hidden or not is_hidden_path(n)))

    def file_stamps(self, prefix: str) -> list[FileStamp]:
        """Every blob below ``prefix`` (a virtual folder) but folder markers and hidden names, sorted."""
        start = prefix + "/" if prefix else ""
        found = [FileStamp(b.name[len(start):], int(b.size or 0), str(b.etag or ""),
                           int(b.last_modified.timestamp() * 1e9) if b.last_modified else 0)
                 for b in self.list_blobs(start) if not is_folder_marker(b)]
        return sorted((f for f in found if not is_hidden_path(f.name)), key=lambda f: f.name)

    def walk_names(self, start: str) -> list[str]:
        """Names of the blobs and virtual folders right under ``start`` (which ends with '/')."""
        with self.errors(f"list '{start or '/'}'"):
            return [item.name for item in self.client.walk_blobs(start, delimiter="/")]

    def has_visible_data(self, prefix: str) -> bool:
        """True when a blob or folder not hidden ('_', '.') sits right under ``prefix``."""
        start = prefix + "/" if prefix else ""
        with self.errors(f"list '{prefix or '/'}'"):
            for item in self.client.walk_blobs(start, delimiter="/"):
                if not is_hidden_path(item.name[len(start):].strip("/")):
                    return True
        return False

    def delete(self, names: Iterable[str], workers: int) -> int:
        names = list(names)

        def one(name: str) -> int:
            with self.errors(f"delete '{name}'"):
                try:
                    self.client.delete_blob(name)
                    return 1
                except ResourceNotFoundError:
                    return 0

        return sum(_parallel(one, names, workers))


def _parallel(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> list[Any]:
    if not items:
        return []
    if workers <= 1 or len(items) == 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="azure-xfer") as pool:
        return list(pool.map(fn, items))


# ------------------------------------------------------------------------------------------------ manifest

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


def _partition_blobs(manifest: Manifest | None, new_files: Mapping[str, Any], mode: str) -> dict[str, list[str]]:
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


# --------------------------------------------------------------------------------------------------- cache

@dataclass
class TransferStats:
    """Counters of what was transferred, for logs and tests (thread-safe increments)."""

    downloaded: int = 0
    download_bytes: int = 0
    unchanged: int = 0
    uploaded: int = 0
    upload_bytes: int = 0
    deleted: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for key, value in counts.items():
                setattr(self, key, getattr(self, key) + value)


class ManifestConflict(StorageError):
    """Another writer replaced a dataset's manifest between our read and our conditional write."""


class BlobVanished(StorageError):
    """A blob a manifest named was deleted while we read it (a concurrent commit cleaned it)."""


@dataclass(frozen=True)
class BlobRef:
    name: str            # full blob name in the container
    etag: str | None     # None: unknown, download
    size: int | None


class BlobCache:
    """Local copies of blobs keyed by blob name, with an ETag index so unchanged blobs are not fetched.

    Index entries are [etag, size, last used (epoch seconds)]. Staging (fetch, then the view) holds a shared
    lock on ``locks/cache.lock``; ``prune`` takes it exclusively, so it never removes a copy between its
    download and its link into a view. Spark reads views after staging, unlocked: a view is only pruned once
    unused for days, far longer than any run.
    """

    def __init__(self, root: Path, access: BlobAccess, stats: TransferStats, workers: int):
        self.root = root
        self.blobs = root / "blobs"
        self.access = access
        self.stats = stats
        self.workers = workers
        self._index_path = root / "index.json"
        self._lock = threading.Lock()
        self._index: dict[str, list[Any]] = self._read_index()

    def _read_index(self) -> dict[str, list[Any]]:
        try:
            return json.loads(self._index_path.read_text())
        except (OSError, ValueError):
            return {}

    @contextlib.contextmanager
    def _file_lock(self, name: str, mode: int = fcntl.LOCK_EX) -> Iterator[bool]:
        """Yields whether the lock is held (only ``LOCK_NB`` in ``mode`` can make it False)."""
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / name, "a") as fh:
            try:
                fcntl.flock(fh, mode)
                held = True
            except BlockingIOError:
                held = False
            try:
                yield held
            finally:
                if held:
                    fcntl.flock(fh, fcntl.LOCK_UN)

    def staging(self) -> contextlib.AbstractContextManager[bool]:
        """Held while a read downloads copies and builds its view (shared: reads do not wait for each other)."""
        return self._file_lock(_CACHE_LOCK, fcntl.LOCK_SH)

    def local_path(self, blob_name: str) -> Path:
        return self.blobs / blob_name

    def _fresh(self, ref: BlobRef) -> bool:
        entry = self._index.get(ref.name)
        if entry is None or ref.etag is None or entry[0] != _etag(ref.etag):
            return False
        try:
            return self.local_path(ref.name).stat().st_size == entry[1]
        except OSError:
            return False

    def fetch(self, refs: Sequence[BlobRef]) -> None:
        """Make local copies of ``refs`` current; raises BlobVanished if a blob was deleted meanwhile."""
        now = int(time.time())
        with self._lock:
            todo = [r for r in refs if not self._fresh(r)]
            fetching = {r.name for r in todo}
            # unchanged copies: only their last use moves
            updates: dict[str, list[Any]] = {r.name: [*self._index[r.name][:2], now] for r in refs
                                             if r.name not in fetching}
        self.stats.add(unchanged=len(refs) - len(todo))

        def one(ref: BlobRef) -> None:
            target = self.local_path(ref.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
            try:
                with self.access.errors(f"download '{ref.name}'"), open(tmp, "wb") as fh:
                    try:
                        downloader = self.access.client.download_blob(ref.name, max_concurrency=2)
                        size = downloader.readinto(fh)
                    except ResourceNotFoundError:
                        raise BlobVanished(f"Azure storage: blob '{ref.name}' vanished while reading "
                                           f"({self.access.target.where})") from None
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            with self._lock:
                updates[ref.name] = [_etag(downloader.properties.etag), size, now]
            self.stats.add(downloaded=1, download_bytes=size)

        try:
            _parallel(one, todo, self.workers)
        finally:
            if updates:
                self._save(updates)

    def _save(self, updates: Mapping[str, list[Any]], removed: Iterable[str] = ()) -> None:
        with self._file_lock("index.lock"):
            on_disk = self._read_index()
            on_disk.update(updates)
            for name in removed:
                on_disk.pop(name, None)
            tmp = self._index_path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_text(json.dumps(on_disk))
            os.replace(tmp, self._index_path)
            with self._lock:
                self._index = on_disk

    def version(self, blob_name: str) -> str:
        """The ETag of the local copy of ``blob_name`` ("" when none): part of the key of a view holding it."""
        with self._lock:
            entry = self._index.get(blob_name)
        return str(entry[0]) if entry else ""

    def build_view(self, view_dir: Path, files: Mapping[str, str]) -> None:
        """Make ``view_dir`` (keyed by its content, see AzureBlobStorage._view_dir) hold ``files`` (local name ->
        blob name), hard-linked from the store: built aside and renamed into place whole, reused as it is once
        there, never changed (a Spark job of another run may be reading it).

        Called inside ``staging()`` only: prune, holding the cache lock exclusively, may then delete the lock
        files of the views it removes, as nobody can hold them.
        """
        key_dir = self._view_key_dir(view_dir)
        with self._file_lock(f"view-{key_dir.name}.lock"):
            if key_dir.is_dir():
                os.utime(key_dir)  # its last use, for prune
                return
            tmp_key = key_dir.with_name(f".{key_dir.name}.{uuid.uuid4().hex[:8]}.tmp")
            tmp_view = tmp_key / view_dir.relative_to(key_dir)
            try:
                tmp_view.mkdir(parents=True)
                for rel, blob in files.items():
                    dest = tmp_view / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        os.link(self.local_path(blob), dest)
                    except OSError:
                        shutil.copy2(self.local_path(blob), dest)
                os.replace(tmp_key, key_dir)
            finally:
                shutil.rmtree(tmp_key, ignore_errors=True)

    def _view_key_dir(self, view_dir: Path) -> Path:
        """``views/<key>``: the unit prune removes (one key holds one view)."""
        views = self.root / "views"
        return views / view_dir.relative_to(views).parts[0]

    def _last_used(self, name: str, entry: list[Any]) -> float:
        if len(entry) > 2:
            return float(entry[2])
        try:  # an entry written before last use was recorded: its download time
            return self.local_path(name).stat().st_mtime
        except OSError:
            return 0.0

    def prune(self, keep_seconds: float) -> tuple[int, int, int] | None:
        """Remove views and copies unused for ``keep_seconds``; returns (copies, bytes, views) removed, or
        None when another process is staging (the next run prunes instead of waiting here)."""
        cutoff = time.time() - keep_seconds
        with self._file_lock(_CACHE_LOCK, fcntl.LOCK_EX | fcntl.LOCK_NB) as held:
            if not held:
                return None
            views = 0
            for key_dir in sorted((self.root / "views").glob("*")):
                if key_dir.is_dir() and key_dir.stat().st_mtime < cutoff:
                    shutil.rmtree(key_dir, ignore_errors=True)
                    views += 1
            for lock in (self.root / "locks").glob("view-*.lock"):  # of removed views (or older names)
                if not (self.root / "views" / lock.name[len("view-"):-len(".lock")]).is_dir():
                    with contextlib.suppress(OSError):
                        lock.unlink()
            index = self._read_index()
            doomed = [name for name, entry in index.items() if self._last_used(name, entry) < cutoff]
            copies = size = 0
            for name in doomed:
                path = self.local_path(name)
                with contextlib.suppress(OSError):
                    st = path.stat()
                    path.unlink()
                    size, copies = size + st.st_size, copies + 1
            known = set(index)
            for path in sorted(self.blobs.rglob("*"), reverse=True) if self.blobs.is_dir() else []:
                with contextlib.suppress(OSError):
                    if path.is_dir():
                        path.rmdir()  # only succeeds when empty
                    elif path.relative_to(self.blobs).as_posix() not in known:
                        st = path.stat()  # a download killed before its index entry was saved
                        if st.st_mtime < cutoff:
                            path.unlink()
                            size, copies = size + st.st_size, copies + 1
            if doomed:
                self._save({}, doomed)
            return copies, size, views


def _etag(value: str) -> str:
    """Listings give ETags bare, downloads quoted: compare them bare."""
    return value.strip('"')


def _same_file(a: Path, b: Path) -> bool:
    try:
        sa, sb = a.stat(), b.stat()
    except OSError:
        return False
    return (sa.st_ino, sa.st_dev) == (sb.st_ino, sb.st_dev) or (
        sa.st_size == sb.st_size and sa.st_mtime_ns >= sb.st_mtime_ns)


# ------------------------------------------------------------------------------------------------- backend

class AzureBlobStorage(Storage):
    """Staged Azure backend: read_uri downloads, begin_write hands out a local folder, commit publishes."""

    def __init__(self, root_uri: str, target: AzureTarget, cache_root: Path, *, retry: RetrySettings | None = None,
                 workers: int = 8, cleanup_grace_seconds: float = 600.0, api_version: str | None = None,
                 cache_keep_days: float = 7.0):
        self.root = root_uri
        self.target = target
        self.access = BlobAccess(target, retry, api_version)
        self.stats = TransferStats()
        self.workers = workers
        self.cleanup_grace_seconds = cleanup_grace_seconds
        self.cache_root = cache_root
        self.cache = BlobCache(cache_root, self.access, self.stats, workers)
        self.cache_keep_days = cache_keep_days
        self._pruned = False
        self._active_writes: set[str] = set()

    @classmethod
    def from_config(cls, root_uri: str, config: Config, **options: Any) -> AzureBlobStorage:
        """Build from a root URI and ``[azure]``; ``options`` tune retries, workers and cleanup grace."""
        target = resolve_target(root_uri, config.azure)
        cache_dir = Path(config.storage.cache_dir)
        if not cache_dir.is_absolute():
            cache_dir = Path(config.base_dir) / cache_dir
        options.setdefault("cache_keep_days", config.storage.cache_keep_days)
        return cls(root_uri, target, cache_dir / "azure" / (target.account or "_") / target.container,
                   **options)

    # -- helpers

    def describe(self) -> str:
        return f"{self.root} ({self.target.where})"

    def _dataset(self, rel_path: str) -> str:
        return self.target.blob_path(rel_path)

    def _read_manifest(self, rel_path: str) -> tuple[Manifest, str] | None:
        name = f"{self._dataset(rel_path)}/{MANIFEST_NAME}"
        got = self.access.get_bytes(name)
        if got is None:
            return None
        return Manifest.from_json(got[0], f"'{name}' ({self.target.where})"), got[1]

    def manifest(self, rel_path: str) -> Manifest | None:
        """The committed manifest of a dataset (None: not a committed dataset)."""
        got = self._read_manifest(rel_path)
        return got[0] if got else None

    def _view_dir(self, rel_path: str, partitions: Sequence[str] | None, files: Mapping[str, str]) -> Path:
        # one key per (dataset, partition selection, files): a view is never changed once built, so a run's
        # Spark never sees files go from a folder it listed when another run reads a newer version
        selection = "*" if partitions is None else "\n".join(sorted(partitions))
        content = "\n".join(f"{name}\0{blob}\0{self.cache.version(blob)}" for name, blob in sorted(files.items()))
        key = hashlib.sha1(f"{self._dataset(rel_path)}\0{selection}\0{content}".encode()).hexdigest()[:16]
        # the view ends with the dataset's own path, as a local root would (transforms may rely on it)
        return self.cache_root / "views" / key / (self._dataset(rel_path) or "_root")

    # -- Storage API

    def check(self) -> None:
        self.access.check()

    def check_readable(self) -> None:
        self.access.check("read the raw root's container")

    def exists(self, rel_path: str) -> bool:
        if self._read_manifest(rel_path) is not None:
            return True
        return self.access.has_visible_data(self._dataset(rel_path))

    def list_dirs(self, rel_path: str) -> list[str]:
        got = self._read_manifest(rel_path)
        if got is not None:
            return got[0].top_dirs()
        return self.access.list_dirs(self._dataset(rel_path))

    def list_files(self, rel_path: str) -> list[FileStamp]:
        return self.access.file_stamps(self._dataset(rel_path))

    def read_uri(self, rel_path: str, partitions: Sequence[str] | None = None) -> str | None:
        self.prune_cache()
        started = time.monotonic()
        before = (self.stats.downloaded, self.stats.unchanged)
        with self.cache.staging():
            for attempt in (1, 2):
                try:
                    files = self._stage(rel_path, partitions)
                    break
                except BlobVanished:
                    # a concurrent commit replaced the version we were reading and cleaned it: read the new one
                    if attempt == 2:
                        raise StorageError(f"Azure storage: '{self._dataset(rel_path)}' changed twice while "
                                           f"being downloaded ({self.target.where})") from None
            if files is None:
                return None
            view = self._view_dir(rel_path, partitions, files)
            self.cache.build_view(view, files)
        log.info("staged %s: %d downloaded, %d unchanged, %.1fs", self._dataset(rel_path) or "/",
                 self.stats.downloaded - before[0], self.stats.unchanged - before[1],
                 time.monotonic() - started)
        return str(view)

    def prune_cache(self) -> None:
        """Once per storage object (a run): drop local copies and views unused for ``cache_keep_days``."""
        if self._pruned:
            return
        self._pruned = True
        got = self.cache.prune(self.cache_keep_days * 86400.0)
        if got is None:
            log.info("cache %s: not pruned, a read (this or another process) is staging inputs", self.cache_root)
        elif any(got):
            copies, size, views = got
            log.info("cache %s: removed %d cached file(s) (%.1f MB) and %d view(s) unused for %g day(s)",
                     self.cache_root, copies, size / 1e6, views, self.cache_keep_days)

    def _stage(self, rel_path: str, partitions: Sequence[str] | None) -> dict[str, str] | None:
        """Download what read_uri needs; returns local name -> blob name (None when nothing is there)."""
        dataset = self._dataset(rel_path)
        got = self._read_manifest(rel_path)
        if got is not None:
            chosen = got[0].files(partitions)
            if not chosen and partitions is not None:
                # none of the asked partitions has data: stage the smallest one so readers still get the
                # dataset's schema (they filter by partition value and see no rows)
                sized = [(sum(f.size for f in fs), k) for k, fs in got[0].partitions.items() if fs]
                chosen = list(got[0].partitions[min(sized)[1]]) if sized else []
            refs = [BlobRef(f"{dataset}/{f.blob}", f.etag, f.size) for f in chosen]
            files = {f.name: f"{dataset}/{f.blob}" for f in chosen}
        else:
            start = dataset + "/" if dataset else ""
            blobs = [b for b in self.access.list_blobs(start, metadata=True) if not is_folder_marker(b)]
            wanted = [p.strip("/") for p in partitions] if partitions else None
            refs, files = [], {}
            for b in blobs:
                rel = b.name[len(start):]
                if is_hidden_path(rel):  # uncommitted _runs/ of a dataset, markers: never data
                    continue
                if wanted is not None and not any(rel.startswith(p + "/") for p in wanted):
                    continue
                refs.append(BlobRef(b.name, b.etag, b.size))
                files[rel] = b.name
        if not files:
            return None
        with self.access.errors(f"download '{dataset}'"):
            self.cache.fetch(refs)
        return files

    def begin_write(self, rel_path: str, run_id: str, mode: str, partition_by: Sequence[str], *,
                    owner: str = "") -> PendingWrite:
        check_write_mode(mode, owner)
        write_id = f"{_SAFE_ID_RE.sub('-', run_id).strip('-') or 'run'}-{uuid.uuid4().hex[:8]}"
        local = self.cache_root / "writes" / write_id
        local.parent.mkdir(parents=True, exist_ok=True)
        self._active_writes.add(write_id)
        return PendingWrite(rel_path=clean_rel_path(rel_path), uri=str(local), run_id=run_id, mode=mode,
                            partition_by=tuple(partition_by), owner=owner)

    def commit(self, pending: PendingWrite) -> None:
        self.commit_all([pending])

    def commit_all(self, pendings: Sequence[PendingWrite]) -> None:
        """Upload every write first (invisible until a manifest names it), then publish the manifests. Several
        writes get a journal blob before the first manifest changes, so that a process dying between two
        manifests has the rest published by the next cleanup (``_finish_journals``)."""
        if not pendings:
            return
        started = time.monotonic()
        uploads: list[tuple[PendingWrite, str, dict[str, list[ManifestFile]]]] = []
        try:
            for pending in pendings:
                write_id = Path(pending.uri).name
                uploads.append((pending, write_id, self._upload(pending, write_id)))
        except BaseException:
            for pending in pendings:
                self.abort(pending)
            raise
        with signals_deferred():  # Ctrl-C and SIGTERM wait for the last manifest
            journal = self._write_journal(uploads) if len(uploads) > 1 else None
            published = 0
            try:
                for pending, write_id, new_files in uploads:
                    self._publish(pending, write_id, new_files)
                    published += 1
            except BaseException:
                if published == 0 or journal is None:  # nothing of it is out: every write is discarded
                    for pending, _id, _files in uploads:
                        self.abort(pending)
                    self._delete_journal(journal)
                else:  # part of it is out: the journal stays, and the next run's cleanup publishes the rest
                    log.warning("Azure storage: %d of %d outputs were published when the commit failed; the "
                                "next run on this storage publishes the others (journal %s)", published,
                                len(uploads), journal)
                    for pending, write_id, _files in uploads:
                        shutil.rmtree(pending.uri, ignore_errors=True)
                        self._active_writes.discard(write_id)
                raise
            self._delete_journal(journal)
        for pending, write_id, new_files in uploads:
            shutil.rmtree(pending.uri, ignore_errors=True)
            self._active_writes.discard(write_id)
            dataset = self._dataset(pending.rel_path)
            log.info("committed %s: %d file(s) in %d partition(s), %.1fs", dataset,
                     sum(len(v) for v in new_files.values()), len(new_files), time.monotonic() - started)
            try:
                self._cleanup_dataset(pending.rel_path)
            except StorageError as exc:  # the commit stands; leftovers wait for the next run
                log.warning("cleanup after commit of %s failed: %s", dataset, exc)

    def _journals(self) -> str:
        return self.target.blob_path(JOURNALS_DIR) + "/"

    def _delete_journal(self, journal: str | None) -> None:
        if journal is not None:
            with contextlib.suppress(StorageError):
                self.access.delete([journal], 1)

    def _write_journal(self, uploads: Sequence[tuple[PendingWrite, str, Mapping[str, Sequence[ManifestFile]]]]
                       ) -> str:
        """The journal blob: each write, its uploaded files, and what the partitions it replaces held before (so
        that finishing it never undoes a later write of those partitions)."""
        writes = []
        for pending, write_id, new_files in uploads:
            got = self._read_manifest(pending.rel_path)
            writes.append({"rel_path": pending.rel_path, "mode": pending.mode,
                           "partition_by": list(pending.partition_by), "owner": pending.owner,
                           "write_id": write_id, "before": _partition_blobs(got[0] if got else None, new_files,
                                                                           pending.mode),
                           "files": {k: [vars(f) for f in v] for k, v in new_files.items()}})
        name = f"{self._journals()}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}.json"
        self.access.put_bytes(name, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                                "writes": writes}).encode())
        return name

    def _journal_abandoned(self, doc: Mapping[str, Any], last_modified: datetime | None) -> bool:
        """A journal of this host is abandoned when its process is gone; another host's, after the grace period."""
        if doc.get("host") == socket.gethostname():
            return not pid_alive(int(doc.get("pid", 0)))
        age = (datetime.now(UTC) - last_modified).total_seconds() if last_modified else 0.0
        return age >= self.cleanup_grace_seconds

    def _finish_journals(self) -> None:
        """Publish the manifests that an ended process's commit had not published yet, where nobody wrote the
        partitions they replace since (what the journal recorded) and their uploaded files are all there."""
        for blob in self.access.list_blobs(self._journals()):
            got = self.access.get_bytes(blob.name)
            try:
                doc = json.loads(got[0]) if got else None
                if doc is None or not self._journal_abandoned(doc, blob.last_modified):
                    continue
                done = [self._finish_write(w) for w in doc["writes"]]
            except (ValueError, KeyError, TypeError, AttributeError, StorageError) as exc:
                log.warning("Azure storage: could not finish the ended commit of journal %s (%s); left in place "
                            "for the next run", blob.name, exc)
                continue
            self.access.delete([blob.name], 1)
            finished = [w["rel_path"] for w, published in zip(doc["writes"], done, strict=True) if published]
            if finished:  # a write id is the run id and a nonce
                runs = sorted({str(w["write_id"]).rsplit("-", 1)[0] for w in doc["writes"]})
                log.warning("finished the commit of an ended run (run %s, process %s on %s): %s", ", ".join(runs),
                            doc.get("pid", "?"), doc.get("host", "?"), ", ".join(sorted(finished)))

    def _finish_write(self, w: Mapping[str, Any]) -> bool:
        """Publish one write of a journal unless it is published, or the partitions it replaces were written
        since (that later data stands); True when this published it."""
        rel, write_id = str(w["rel_path"]), str(w["write_id"])
        dataset = self._dataset(rel)
        files = {k: [ManifestFile(**f) for f in v] for k, v in w["files"].items()}
        present = {b.name[len(dataset) + 1:] for b in self.access.list_blobs(f"{dataset}/{RUNS_DIR}/{write_id}/")}
        if any(f.blob not in present for fs in files.values() for f in fs):
            log.warning("Azure storage: files of an ended commit's write %s to %s are gone; not published",
                        write_id, dataset)
            return False
        for _ in range(_COMMIT_ATTEMPTS):
            got = self._read_manifest(rel)
            current = got[0] if got else None
            if current is not None and (current.write_id == write_id or any(
                    b.startswith(f"{RUNS_DIR}/{write_id}/") for b in current.referenced_blobs())):
                return False  # published before the process ended
            if _partition_blobs(current, files, str(w["mode"])) != w["before"]:
                log.warning("Azure storage: %s was written since an ended commit began; its write %s is not "
                            "published", dataset, write_id)
                return False
            manifest = next_manifest(current, files, str(w["mode"]), write_id, tuple(w["partition_by"]), rel,
                                     str(w["owner"]))
            try:
                self._put_manifest(rel, manifest, got[1] if got else None)
                return True
            except ManifestConflict:
                continue
        raise StorageError(f"Azure storage: finishing an ended commit of '{dataset}' lost {_COMMIT_ATTEMPTS} races "
                           f"with other writers ({self.target.where})")

    def _journal_write_ids(self) -> set[str]:
        """The writes named by journals still there: their uploaded files must wait for the journal's end."""
        ids: set[str] = set()
        for blob in self.access.list_blobs(self._journals()):
            got = self.access.get_bytes(blob.name)
            with contextlib.suppress(ValueError, KeyError, TypeError):
                ids |= {str(w["write_id"]) for w in json.loads(got[0])["writes"]} if got else set()
        return ids

    def _upload(self, pending: PendingWrite, write_id: str) -> dict[str, list[ManifestFile]]:
        root = Path(pending.uri)
        if not root.is_dir():
            raise StorageError(f"nothing to commit for '{pending.rel_path}': {root} does not exist")
        locals_ = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                         if p.is_file() and not is_hidden_path(p.relative_to(root).as_posix()))
        dataset = self._dataset(pending.rel_path)

        def one(rel: str) -> ManifestFile:
            blob = f"{RUNS_DIR}/{write_id}/{rel}"
            etag, size = self.access.upload_file(f"{dataset}/{blob}", root / rel)
            self.stats.add(uploaded=1, upload_bytes=size)
            return ManifestFile(name=rel, blob=blob, size=size, etag=etag)

        keys = {rel: partition_key(rel, pending.partition_by, pending.rel_path) for rel in locals_}
        out: dict[str, list[ManifestFile]] = {}
        for f in _parallel(one, locals_, self.workers):
            key = keys[f.name]
            if pending.owner:  # named for its owner, so that its rerun replaces exactly these
                f = replace(f, name=owned_name(pending.owner, f.name))
            out.setdefault(key, []).append(f)
        if pending.mode == "overwrite_partitions" or pending.owner:
            for key in pending.replace_partitions:  # owned partitions this write left empty
                out.setdefault(key, [])
        return out

    def _put_manifest(self, rel_path: str, manifest: Manifest, etag: str | None) -> None:
        """Replace the dataset's manifest if it still has ``etag`` (None: if there is none yet); ManifestConflict
        when another writer replaced (or created) it meanwhile."""
        name = f"{self._dataset(rel_path)}/{MANIFEST_NAME}"
        conditions: dict[str, Any] = (
            {"etag": etag, "match_condition": MatchConditions.IfNotModified, "overwrite": True}
            if etag is not None else {"overwrite": False})
        with self.access.errors(f"commit '{name}'"):
            try:
                self.access.client.get_blob_client(name).upload_blob(
                    manifest.to_json().encode(), content_settings=ContentSettings(content_type="application/json"),
                    **conditions)
            except (ResourceModifiedError, ResourceExistsError):  # (the errors block would make it a failure)
                raise ManifestConflict(name) from None

    def _publish(self, pending: PendingWrite, write_id: str, new_files: Mapping[str, Sequence[ManifestFile]]
                 ) -> None:
        name = f"{self._dataset(pending.rel_path)}/{MANIFEST_NAME}"
        for _ in range(_COMMIT_ATTEMPTS):
            got = self._read_manifest(pending.rel_path)
            manifest = next_manifest(got[0] if got else None, new_files, pending.mode, write_id,
                                     pending.partition_by, pending.rel_path, pending.owner)
            try:
                self._put_manifest(pending.rel_path, manifest, got[1] if got else None)
                return
            except ManifestConflict:
                log.info("manifest %s changed during commit; merging again", name)
        raise StorageError(f"Azure storage: commit of '{name}' lost {_COMMIT_ATTEMPTS} races with other "
                           f"writers ({self.target.where})")

    def abort(self, pending: PendingWrite) -> None:
        write_id = Path(pending.uri).name
        shutil.rmtree(pending.uri, ignore_errors=True)
        self._active_writes.discard(write_id)
        start = f"{self._dataset(pending.rel_path)}/{RUNS_DIR}/{write_id}/"
        try:
            names = [b.name for b in self.access.list_blobs(start)]
            self.stats.add(deleted=self.access.delete(names, self.workers))
        except StorageError as exc:
            log.warning("abort of %s left blobs under %s: %s", pending.rel_path, start, exc)

    def put_file(self, rel_path: str, local_file: str) -> None:
        self.access.upload_file(self._dataset(rel_path), local_file)

    def cleanup(self, rel_path: str) -> None:
        """Delete blobs under ``_runs/`` that no manifest references (killed uploads, replaced versions),
        once older than the grace period, in ``rel_path`` and the datasets below it ("" = the whole root)."""
        self._finish_journals()
        for dataset in self._datasets_with_runs(clean_rel_path(rel_path), depth=6):
            self._cleanup_dataset(dataset)
        self._cleanup_local_writes()

    def _datasets_with_runs(self, rel_path: str, depth: int) -> list[str]:
        subdirs = self.access.list_dirs(self._dataset(rel_path), include_hidden=True)
        found = [rel_path] if RUNS_DIR in subdirs else []
        if depth > 0:
            for sub in subdirs:
                if not is_hidden_path(sub) and "=" not in sub:  # partition folders hold no datasets
                    found += self._datasets_with_runs(f"{rel_path}/{sub}" if rel_path else sub, depth - 1)
        return found

    def _cleanup_dataset(self, rel_path: str) -> None:
        dataset = self._dataset(rel_path)
        got = self._read_manifest(rel_path)
        referenced = got[0].referenced_blobs() if got else set()
        start = f"{dataset}/{RUNS_DIR}/"
        now = datetime.now(UTC)
        journaled = self._journal_write_ids()
        doomed = []
        for b in self.access.list_blobs(start):
            rel = b.name[len(dataset) + 1:]
            write_id = rel.split("/", 2)[1] if rel.count("/") >= 2 else ""
            age = (now - b.last_modified).total_seconds() if b.last_modified else 0.0
            if rel not in referenced and write_id not in self._active_writes and write_id not in journaled and \
                    age >= self.cleanup_grace_seconds:
                doomed.append(b.name)
        if doomed:
            deleted = self.access.delete(doomed, self.workers)
            self.stats.add(deleted=deleted)
            log.info("cleaned %d unreferenced blob(s) under %s", deleted, start)

    def _cleanup_local_writes(self) -> None:
        writes = self.cache_root / "writes"
        if not writes.is_dir():
            return
        cutoff = time.time() - max(self.cleanup_grace_seconds, 3600.0)
        for path in writes.iterdir():
            with contextlib.suppress(OSError):
                if path.name not in self._active_writes and path.stat().st_mtime < cutoff:
                    shutil.rmtree(path, ignore_errors=True)

    def __repr__(self) -> str:
        return f"AzureBlobStorage({scrub(self.describe(), self.target.secrets)})"


def is_folder_marker(blob: Any) -> bool:
    """Empty blobs standing for folders (ADLS Gen2, some tools) are not data."""
    meta = getattr(blob, "metadata", None) or {}
    return blob.name.endswith("/") or (blob.size == 0 and str(meta.get("hdi_isfolder", "")).lower() == "true")
