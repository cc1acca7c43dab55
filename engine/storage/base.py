"""The storage interface the runner uses: read committed datasets, write aside, commit atomically.

Paths given to a Storage are relative to its root ("trade", "analytics/bars_1m", "csv/2020-08-05").
URIs handed back are what Spark reads or writes (a local path, or abfss:// in direct mode).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from engine.deferred_signals import signals_deferred
from engine.errors import StorageError

WRITE_MODES = ("overwrite_partitions", "overwrite", "append")
_UNSAFE = re.compile(r"[^A-Za-z0-9]+")


@dataclass(frozen=True)
class PendingWrite:
    """A write in progress: Spark writes to ``uri``; ``commit`` publishes it, ``abort`` discards it."""

    rel_path: str
    uri: str
    run_id: str
    mode: str
    partition_by: tuple[str, ...]
    # overwrite_partitions: partitions ("trade_dt=2020-08-06") this write owns; emptied when it wrote none.
    # append with an owner: partitions emptied of the owner's earlier files even when this write added none
    replace_partitions: tuple[str, ...] = ()
    # append only: who adds the files (e.g. the output whose dropped rows go to a shared quarantine). Its files
    # are named for it (owned_name); in every partition it writes (and in replace_partitions) the owner's
    # earlier files are replaced by the new ones, while the other writers' files there stay.
    owner: str = ""


@dataclass(frozen=True)
class FileStamp:
    """One file under a listed folder, with what tells that it changed since: its size and the store's own
    version mark (the modification time in ns on a local disk, the blob's ETag on Azure)."""

    name: str  # relative to the listed folder, '/'-separated
    size: int
    version: str
    modified_ns: int = 0  # when it was last written, in ns since the epoch (0: not known)


def is_hidden_path(rel: str) -> bool:
    """Hadoop's convention: path components starting with '_' or '.' are not data (markers, uncommitted runs)."""
    return any(part.startswith(("_", ".")) for part in rel.split("/") if part)


def check_write_mode(mode: str, owner: str = "") -> None:
    """The checks every backend's begin_write makes (StorageError)."""
    if mode not in WRITE_MODES:
        raise StorageError(f"unknown write mode '{mode}'; expected one of {', '.join(WRITE_MODES)}")
    if owner and mode != "append":
        raise StorageError(f"a write with an owner ('{owner}') must use mode append, not {mode}")


def owner_tag(owner: str) -> str:
    """The file-name prefix of an owner's files: readable, plus a hash so that no two owners share it.

    The readable part has no '.', the hash has a fixed length, so one owner's tag never starts another's;
    it never starts with '_' or '.' (Spark would take the file for metadata and skip it).
    """
    readable = _UNSAFE.sub("_", owner).strip("_")[:40] or "owner"
    return f"{readable}.{hashlib.sha1(owner.encode()).hexdigest()[:8]}."


def owned_name(owner: str, rel: str) -> str:
    """``rel`` (a file name, or a path whose last part is one) with that file named as a file of ``owner``."""
    head, _, base = rel.rpartition("/")
    return f"{head}/{owner_tag(owner)}{base}" if head else owner_tag(owner) + base


def is_owned(owner: str, file_name: str) -> bool:
    """True when ``file_name`` (no folder) was added by ``owner``."""
    return file_name.startswith(owner_tag(owner))


class Storage(ABC):
    root: str

    @abstractmethod
    def describe(self) -> str:
        """Where this storage points, for messages (never with secrets)."""

    @abstractmethod
    def check(self) -> None:
        """Fail fast (StorageError, one line) when the root cannot be reached or used."""

    def check_readable(self) -> None:  # noqa: B027 - optional hook
        """Fail fast (StorageError, one line) when a root that is only read (the raw root) cannot be: wrong
        credentials, a missing container. Nothing to check by default: a missing local folder is named by the
        raw-folder check, and a raw root may well be read-only."""

    @abstractmethod
    def exists(self, rel_path: str) -> bool:
        """True when a committed dataset (or raw folder) is there."""

    @abstractmethod
    def list_dirs(self, rel_path: str) -> list[str]:
        """Names of the immediate sub-folders of ``rel_path`` (sorted); [] when absent."""

    @abstractmethod
    def list_files(self, rel_path: str) -> list[FileStamp]:
        """Every file below ``rel_path`` (sub-folders too, hidden names skipped), sorted by name; [] when absent."""

    @abstractmethod
    def read_uri(self, rel_path: str, partitions: Sequence[str] | None = None) -> str | None:
        """A URI Spark can read for the committed data at ``rel_path`` (staged locally if needed).

        ``partitions`` (e.g. ["trade_dt=2020-08-06"]) limits what must be made readable; None means all.
        Returns None when nothing is there.
        """

    @abstractmethod
    def begin_write(self, rel_path: str, run_id: str, mode: str, partition_by: Sequence[str], *,
                    owner: str = "") -> PendingWrite:
        """Reserve a place aside for Spark to write to; ``owner`` only with append (see PendingWrite.owner)."""

    @abstractmethod
    def commit(self, pending: PendingWrite) -> None:
        """Publish atomically: readers see the old data or the new, never half."""

    def commit_all(self, pendings: Sequence[PendingWrite]) -> None:
        """Publish several writes (a step's outputs) as one: once this starts, all of them are published, even
        when the process dies in between (the backends that can keep a journal finish it at the next cleanup).

        Ctrl-C and SIGTERM are held back until the last one is published. On an error, the writes not yet
        published are aborted and the error raised. This default publishes them one by one, with no journal.
        """
        with signals_deferred():
            for n, pending in enumerate(pendings):
                try:
                    self.commit(pending)
                except BaseException:
                    for rest in pendings[n + 1:]:
                        with contextlib.suppress(Exception):
                            self.abort(rest)
                    raise

    @abstractmethod
    def abort(self, pending: PendingWrite) -> None:
        """Discard a write aside; the committed data stays as it was."""

    @abstractmethod
    def put_file(self, rel_path: str, local_file: str) -> None:
        """Publish one small file (a report, a log) at ``rel_path``."""

    def cleanup(self, rel_path: str) -> None:  # noqa: B027 - optional hook
        """Remove leftovers of killed writes under ``rel_path``."""

    def settle(self) -> None:  # noqa: B027 - optional hook
        """Called once this process writes no more (its Spark JVM has exited): remove what its own writes left.

        A task killed by a cancel can still touch its staging folder after the write was aborted.
        """
