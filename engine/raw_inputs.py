"""Whether the raw files a step read for a date are still the files it read.

A late file (an exchange re-sends a day, a part file lands after the run) would leave the date's job 'success'
with its outputs missing that file, and every catch-up would say "nothing to do". So when a step reads a raw
folder (through its context's ``raw_uri``), the runner stamps the folder first: how many files, how many bytes,
and a digest of each file's name, size and version mark (modification time, or the blob's ETag). The stamp is
kept in the step's tracker row. A later catch-up, ``--date`` run or ``plan`` stamps the folder again; a file
added, replaced or rewritten since means the input changed, and the job runs again. Like rsync and make, this
compares names, sizes and times, not contents: a file copied again with the same bytes counts as changed (its
date is recomputed, to the same result).

Files that only went away are no change: raw files archived or deleted after processing (or a mistyped raw
root, where nothing is found) must not turn a finished date into a rerun that can only fail. So a folder that
now holds no file never counts as changed, and one with fewer files counts only when a file in it is newer than
every file it held then.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.spec import PipelineSpec
from engine.step_message import message_field
from engine.storage.base import FileStamp, Storage
from engine.tracker.base import step_job_id


@dataclass(frozen=True)
class RawStamp:
    """What a raw folder held when a step read it."""

    files: int
    size: int
    digest: str
    newest_ns: int = 0  # the latest modification time of its files (0: no file, or not known)

    def encode(self) -> str:
        return f"{self.files}:{self.size}:{self.digest}:{self.newest_ns}"

    @classmethod
    def decode(cls, text: Any) -> RawStamp | None:
        """The stamp a tracker row keeps, or None when the text is not one."""
        parts = str(text).split(":")
        if len(parts) != 4 or not all(p.isdigit() for p in (parts[0], parts[1], parts[3])):
            return None
        return cls(int(parts[0]), int(parts[1]), parts[2], int(parts[3]))

    def has_news_since(self, then: RawStamp) -> bool:
        """A file was added, replaced or rewritten since ``then`` (see the module docstring: files that only
        went away are no change)."""
        if self.files == 0 or self == then:
            return False
        return self.files >= then.files or self.newest_ns > then.newest_ns

    def describe(self) -> str:
        files = f"{self.files} file{'' if self.files == 1 else 's'}"
        return f"{files}, {self.size / 1e6:.1f} MB" if self.files else "no files"


def stamp_files(files: Iterable[FileStamp]) -> RawStamp:
    digest = hashlib.sha256()
    count = size = newest = 0
    for f in sorted(files, key=lambda f: f.name):
        digest.update(f"{f.name}\0{f.size}\0{f.version}\n".encode())
        count, size, newest = count + 1, size + f.size, max(newest, f.modified_ns)
    return RawStamp(count, size, digest.hexdigest()[:20], newest)


def stamp_folder(raw_storage: Storage, rel_path: str) -> RawStamp:
    """The stamp of ``rel_path`` under the raw root now (no files: a folder that is not there)."""
    return stamp_files(raw_storage.list_files(rel_path))


class RawStamper:
    """Stamps raw folders for a catch-up that weighs many dates: each top folder (``csv``) is listed once."""

    def __init__(self, raw_storage: Storage):
        self.raw_storage = raw_storage
        self._tops: dict[str, list[FileStamp]] = {}

    def stamp(self, rel_path: str) -> RawStamp:
        rel = rel_path.strip("/")
        top, _, rest = rel.partition("/")
        if not rest:
            return stamp_folder(self.raw_storage, rel)
        if top not in self._tops:
            self._tops[top] = self.raw_storage.list_files(top)
        inside = rest + "/"
        return stamp_files(FileStamp(f.name[len(inside):], f.size, f.version, f.modified_ns)
                           for f in self._tops[top] if f.name.startswith(inside))


def read_stamps(message: str | None) -> dict[str, str]:
    """{raw folder: encoded stamp} a succeeded step's row keeps ({} when it read no raw folder, or ran before
    raw folders were stamped)."""
    return {str(k): str(v) for k, v in (message_field(message, "raw") or {}).items()}


def changed_folders(message: str | None, stamper: RawStamper) -> list[str]:
    """Each raw folder the step read that has a file added, replaced or rewritten since, described:
    ``csv/2024-01-05 (5 files, 1.2 MB; was 4 files, 1.0 MB)``."""
    changed = []
    for rel, text in sorted(read_stamps(message).items()):
        then, now = RawStamp.decode(text), stamper.stamp(rel)
        if then is not None and now.has_news_since(then):
            if (then.files, then.size) == (now.files, now.size):
                changed.append(f"{rel} ({now.describe()}, same count and size, but a file's name or time differs)")
            else:
                changed.append(f"{rel} ({now.describe()}; was {then.describe()})")
    return changed


def changed_raw(spec: PipelineSpec, date: dt.date, rows: Mapping[str, Any], stamper: RawStamper) -> list[str]:
    """The raw folders the job's succeeded steps read for ``date`` that changed since (``rows``: the tracker's
    rows by job id)."""
    changed: list[str] = []
    for step in spec.steps.values():
        row = rows.get(step_job_id(spec.name, step.name, date))
        if row is not None and row.status == "success":
            changed += [c for c in changed_folders(row.message, stamper) if c not in changed]
    return changed


def describe_changed(changed: list[str]) -> str:
    """``its raw input changed since it ran (...)`` for a message, the first few folders named."""
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    return f"its raw input changed since it ran: {shown}"
