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
import hashlib
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
from azure.storage.blob import ContentSettings

from engine.config import Config
from engine.deferred_signals import signals_deferred
from engine.errors import StorageError
from engine.processes import pid_alive
from engine.storage.azure_access import (
    AzureTarget,
    BlobAccess,
    RetrySettings,
    is_folder_marker,
    parallel,
    resolve_target,
)
from engine.storage.azure_cache import BlobCache, BlobRef, BlobVanished, TransferStats
from engine.storage.azure_errors import scrub
from engine.storage.azure_manifest import (
    MANIFEST_NAME,
    RUNS_DIR,
    Manifest,
    ManifestConflict,
    ManifestFile,
    new_write_id,
    next_manifest,
    partition_blobs,
    partition_key,
)
from engine.storage.azure_uri import clean_rel_path
from engine.storage.base import (
    FileStamp,
    PendingWrite,
    Storage,
    check_write_mode,
    is_hidden_path,
    owned_name,
)

log = logging.getLogger(__name__)

# <prefix>/_journals/<host>-<pid>-<id>.json: a commit of several writes in progress (see commit_all)
JOURNALS_DIR = "_journals"
_COMMIT_ATTEMPTS = 5


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
        counts = [0, 0]  # downloaded, unchanged by this read (a step beside it reads through the same stats)
        with self.cache.staging():
            for attempt in (1, 2):
                try:
                    files = self._stage(rel_path, partitions, counts)
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
        log.info("staged %s: %d downloaded, %d unchanged, %.1fs", self._dataset(rel_path) or "/", counts[0],
                 counts[1], time.monotonic() - started)
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

    def _stage(self, rel_path: str, partitions: Sequence[str] | None, counts: list[int]) -> dict[str, str] | None:
        """Download what read_uri needs; returns local name -> blob name (None when nothing is there). Adds what
        it downloaded and found unchanged to ``counts``."""
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
            downloaded, unchanged = self.cache.fetch(refs)
        counts[0] += downloaded
        counts[1] += unchanged
        return files

    def begin_write(self, rel_path: str, run_id: str, mode: str, partition_by: Sequence[str], *,
                    owner: str = "") -> PendingWrite:
        check_write_mode(mode, owner)
        write_id = new_write_id(run_id)
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
                           "write_id": write_id, "before": partition_blobs(got[0] if got else None, new_files,
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
            if partition_blobs(current, files, str(w["mode"])) != w["before"]:
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
        for f in parallel(one, locals_, self.workers):
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
