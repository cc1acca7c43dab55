"""Staged reads must not download an unchanged input twice, and runs and processes share one cache: the local
copies, their ETag index and the locking that keeps a prune from removing a copy mid-staging live apart from commits.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from engine.errors import StorageError
from engine.storage.azure_access import BlobAccess, parallel

_CACHE_LOCK = "cache.lock"


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

    def fetch(self, refs: Sequence[BlobRef]) -> tuple[int, int]:
        """Make local copies of ``refs`` current: (downloaded, unchanged) of this call (the shared stats also
        count other steps' reads). Raises BlobVanished if a blob was deleted meanwhile."""
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
            parallel(one, todo, self.workers)
        finally:
            if updates:
                self._save(updates)
        return len(todo), len(refs) - len(todo)

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
