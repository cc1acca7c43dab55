"""The storage interface the runner uses: read committed datasets, write aside, commit atomically.

Paths given to a Storage are relative to its root ("trade", "analytics/bars_1m", "csv/2020-08-05").
URIs handed back are what Spark reads or writes (a local path, or abfss:// in direct mode).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

WRITE_MODES = ("overwrite_partitions", "overwrite", "append")


@dataclass(frozen=True)
class PendingWrite:
    """A write in progress: Spark writes to ``uri``; ``commit`` publishes it, ``abort`` discards it."""

    rel_path: str
    uri: str
    run_id: str
    mode: str
    partition_by: tuple[str, ...]
    # overwrite_partitions: partitions ("trade_dt=2020-08-06") this write owns; emptied when it wrote none
    replace_partitions: tuple[str, ...] = ()


class Storage(ABC):
    root: str

    @abstractmethod
    def describe(self) -> str:
        """Where this storage points, for messages (never with secrets)."""

    @abstractmethod
    def check(self) -> None:
        """Fail fast (StorageError, one line) when the root cannot be reached or used."""

    @abstractmethod
    def exists(self, rel_path: str) -> bool:
        """True when a committed dataset (or raw folder) is there."""

    @abstractmethod
    def list_dirs(self, rel_path: str) -> list[str]:
        """Names of the immediate sub-folders of ``rel_path`` (sorted); [] when absent."""

    @abstractmethod
    def read_uri(self, rel_path: str, partitions: Sequence[str] | None = None) -> str | None:
        """A URI Spark can read for the committed data at ``rel_path`` (staged locally if needed).

        ``partitions`` (e.g. ["trade_dt=2020-08-06"]) limits what must be made readable; None means all.
        Returns None when nothing is there.
        """

    @abstractmethod
    def begin_write(self, rel_path: str, run_id: str, mode: str, partition_by: Sequence[str]) -> PendingWrite:
        """Reserve a place aside for Spark to write to."""

    @abstractmethod
    def commit(self, pending: PendingWrite) -> None:
        """Publish atomically: readers see the old data or the new, never half."""

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
