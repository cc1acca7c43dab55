"""Local-folder storage: Spark writes aside under ``.tickflow/staging``, commit renames into place."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from engine.deferred_signals import signals_deferred
from engine.errors import StorageError
from engine.processes import pid_alive
from engine.storage.base import (
    FileStamp,
    PendingWrite,
    Storage,
    check_write_mode,
    is_hidden_path,
    is_owned,
    owned_name,
)

STAGING = ".tickflow_staging"
TRASH = ".tickflow_trash"
# A root may be shared (NFS, a container volume): another host's run folder is only known abandoned when
# nothing in it changed for this long (its PID means nothing here; a run writes into it while alive).
FOREIGN_ABANDONED_SECONDS = 24 * 3600.0
# A commit's journal: ``<host>-<pid>-journal-<id>.json`` in the staging base, there while the commit runs.
JOURNAL_MARK = "journal-"
_PENDING_FIELDS = tuple(f.name for f in dataclasses.fields(PendingWrite))
log = logging.getLogger("tickflow.storage")


@contextlib.contextmanager
def _root_lock(root: Path) -> Iterator[None]:
    """An exclusive lock on the root folder itself (released by the kernel when the process dies); where the
    file system has no such locks (or the root is not there yet), nothing."""
    try:
        fd = os.open(root, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _journal_runs(journal: Path) -> set[str]:
    """The run folders (``<host>-<pid>-<run id>`` under the staging base) whose writes a journal names, as far as
    it can be read."""
    try:
        writes = json.loads(journal.read_text(encoding="utf-8"))["writes"]
        uris = [Path(str(w.get("uri", ""))).parts for w in writes if isinstance(w, dict)]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()
    return {parts[1] for parts in uris if len(parts) > 2 and parts[0] == STAGING}


def _changed_since(folder: Path, cutoff: float) -> bool:
    """True when ``folder`` (or a file) or anything below it was modified after ``cutoff`` (epoch seconds)."""
    with contextlib.suppress(OSError):
        if os.lstat(folder).st_mtime > cutoff:
            return True
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in (".", *dirnames, *filenames):
            try:
                if os.lstat(os.path.join(dirpath, name)).st_mtime > cutoff:
                    return True
            except OSError:  # removed meanwhile: its run is alive, or someone cleans it
                continue
    return False


def _make_dirs(folder: Path) -> None:
    """``mkdir -p`` that survives another process removing an empty staging or trash base meanwhile.

    A finished run removes the base folders once they are empty; between ``mkdir -p`` creating (or finding) a
    base and creating the folder inside it, another process's run may remove that (then empty) base again.
    """
    for _ in range(10):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return
        except (FileNotFoundError, FileExistsError):  # a parent vanished under us: try again
            continue
    folder.mkdir(parents=True, exist_ok=True)


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (another run's folder) or already gone
        folder.rmdir()


def _leaf_partitions(folder: Path, depth: int) -> list[Path]:
    """Partition folders ``col=value`` exactly ``depth`` levels below ``folder``."""
    level = [folder]
    for _ in range(depth):
        level = [c for p in level for c in sorted(p.iterdir()) if c.is_dir() and "=" in c.name]
    return level


class LocalStorage(Storage):
    def __init__(self, root: str | os.PathLike[str]):
        self.path = Path(root).expanduser().resolve()
        self.root = str(self.path)
        # Steps of a run may write concurrently: folder moves are serialised, and a run's staging folder is
        # pruned only when none of its writes is in flight (Spark may be creating folders in it).
        self._lock = threading.Lock()
        self._open: dict[Path, int] = {}

    def describe(self) -> str:
        return f"local folder {self.path}"

    def check(self) -> None:
        """The root is a writable folder, or can be made one: checked without creating anything, so that a run
        refused afterwards (e.g. by an unreachable tracker) leaves no folder behind. Writes create it."""
        existing = self.path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise StorageError(f"cannot use storage root {self.path}: {existing} is not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise StorageError(f"storage root {self.path} is not writable ({existing} is not)")

    def _abs(self, rel_path: str) -> Path:
        rel = rel_path.strip("/")
        target = (self.path / rel).resolve()
        if target != self.path and self.path not in target.parents:
            raise StorageError(f"path '{rel_path}' escapes the storage root {self.path}")
        return target

    def exists(self, rel_path: str) -> bool:
        return self._abs(rel_path).exists()

    def list_dirs(self, rel_path: str) -> list[str]:
        folder = self._abs(rel_path)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))

    def list_files(self, rel_path: str) -> list[FileStamp]:
        folder = self._abs(rel_path)
        found: list[FileStamp] = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if not is_hidden_path(d)]
            for name in filenames:
                if is_hidden_path(name):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:  # removed meanwhile: not there
                    continue
                found.append(FileStamp(os.path.relpath(path, folder).replace(os.sep, "/"), st.st_size,
                                       str(st.st_mtime_ns), st.st_mtime_ns))
        return sorted(found, key=lambda f: f.name)

    def read_uri(self, rel_path: str, partitions: Sequence[str] | None = None) -> str | None:
        target = self._abs(rel_path)
        return str(target) if target.exists() else None

    def begin_write(self, rel_path: str, run_id: str, mode: str, partition_by: Sequence[str], *,
                    owner: str = "") -> PendingWrite:
        check_write_mode(mode, owner)
        tag = f"{socket.gethostname()}-{os.getpid()}-{run_id}"
        staged = self.path / STAGING / tag / self._write_rel(rel_path)
        with self._lock:
            if staged.exists():
                shutil.rmtree(staged)
            _make_dirs(staged.parent)
            tag_dir = self.path / STAGING / tag
            self._open[tag_dir] = self._open.get(tag_dir, 0) + 1
        return PendingWrite(rel_path.strip("/"), str(staged), run_id, mode, tuple(partition_by), owner=owner)

    def _write_rel(self, rel_path: str) -> Path:
        """``rel_path`` under the root, resolved and checked before anything is touched: the staging folder is
        built from it and emptied first, so ``a/../../x`` would otherwise delete a folder outside the root."""
        target = self._abs(rel_path)
        if target == self.path:
            raise StorageError(f"path '{rel_path}' names the storage root {self.path} itself, not a dataset in it")
        return target.relative_to(self.path)

    def commit(self, pending: PendingWrite) -> None:
        self.commit_all([pending])

    def commit_all(self, pendings: Sequence[PendingWrite]) -> None:
        """Publish the writes together: a journal naming each write and what it holds is written first, so
        that when this process dies halfway, the next cleanup finishes the remaining renames (roll forward).
        Ctrl-C and SIGTERM wait for the last rename."""
        if not pendings:
            return
        with signals_deferred(), self._lock:
            plans = [self._plan(p) for p in pendings]
            journal = self._write_journal(pendings, plans)
            try:
                for n, (pending, plan) in enumerate(zip(pendings, plans, strict=True)):
                    try:
                        self._commit(pending, plan)
                    except BaseException:  # the writes after it stay unpublished
                        for rest in pendings[n + 1:]:
                            shutil.rmtree(rest.uri, ignore_errors=True)
                        raise
            finally:  # a failed commit still ends the writes, or the run's staging folders would stay
                journal.unlink(missing_ok=True)
                for pending in pendings:
                    self._finished(Path(pending.uri))

    @staticmethod
    def _plan(pending: PendingWrite) -> list[str]:
        """What a commit moves, fixed before it starts: the files of an append, the partition folders of a
        partition overwrite (relative to the staged folder); nothing for a whole-dataset overwrite."""
        staged = Path(pending.uri)
        if pending.mode == "append":
            return sorted(src.relative_to(staged).as_posix() for src in staged.rglob("*")
                          if src.is_file() and not src.name.startswith(("_", ".")))
        if pending.mode == "overwrite_partitions" and pending.partition_by:
            return [part.relative_to(staged).as_posix()
                    for part in _leaf_partitions(staged, len(pending.partition_by))]
        return []

    def _write_journal(self, pendings: Sequence[PendingWrite], plans: Sequence[list[str]]) -> Path:
        """The commit's journal, complete before it is visible (written aside, synced, renamed)."""
        base = self.path / STAGING
        name = f"{socket.gethostname()}-{os.getpid()}-{JOURNAL_MARK}{uuid.uuid4().hex[:12]}.json"
        writes = [{**dataclasses.asdict(p), "uri": Path(p.uri).relative_to(self.path).as_posix(), "plan": plan}
                  for p, plan in zip(pendings, plans, strict=True)]
        _make_dirs(base)
        tmp = base / f"{name}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"version": 1, "writes": writes}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, base / name)
        return base / name

    def _commit(self, pending: PendingWrite, plan: Sequence[str]) -> None:
        """Move what ``plan`` names into place. Run again after a crash, it moves what is still staged and
        leaves alone what was already moved."""
        staged = Path(pending.uri)
        target = self._abs(pending.rel_path)
        trash = self.path / TRASH / staged.relative_to(self.path / STAGING)
        target.parent.mkdir(parents=True, exist_ok=True)
        if pending.mode == "append":
            added = set()
            for rel in plan:
                src = staged / rel
                dest = target / rel
                if pending.owner:
                    dest = dest.with_name(owned_name(pending.owner, dest.name))
                if src.is_file():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dest)
                added.add(dest)
            if pending.owner:
                self._drop_owned(target, pending, added)
        elif pending.mode == "overwrite_partitions" and pending.partition_by:
            for rel in plan:
                if (staged / rel).is_dir():
                    self._swap(staged / rel, target / rel, trash / rel)
            for key in pending.replace_partitions:
                if key not in plan and (target / key).exists():
                    _make_dirs((trash / key).parent)
                    os.replace(target / key, trash / key)
        elif staged.exists():
            self._swap(staged, target, trash)
        shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(trash, ignore_errors=True)
        self._prune(trash.parent, self.path)  # up to and including the trash base, when empty

    @staticmethod
    def _drop_owned(target: Path, pending: PendingWrite, keep: set[Path]) -> None:
        """Remove the owner's earlier files from the partitions it wrote and those it replaces (after the new
        ones are in: a crash in between leaves both, which the next rerun clears). Other writers' files stay."""
        folders = {p.parent for p in keep} | {target / key for key in pending.replace_partitions}
        for folder in sorted(folders):
            if not folder.is_dir():
                continue
            for old in list(folder.iterdir()):
                if old.is_file() and old not in keep and is_owned(pending.owner, old.name):
                    old.unlink(missing_ok=True)
                    old.with_name(f".{old.name}.crc").unlink(missing_ok=True)
            LocalStorage._prune(folder, target)  # a partition left with no file goes, as a rerun's would

    def _finished(self, staged: Path) -> None:
        """One write of a run ended; the last one removes the run's (by then empty) staging folders."""
        base = self.path / STAGING
        if base not in staged.parents:
            return
        tag_dir = base / staged.relative_to(base).parts[0]
        left = self._open.get(tag_dir, 1) - 1
        if left > 0:
            self._open[tag_dir] = left
            return
        self._open.pop(tag_dir, None)
        if tag_dir.is_dir():
            for folder in sorted((p for p in tag_dir.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                                 reverse=True):
                _remove_if_empty(folder)
            _remove_if_empty(tag_dir)
        _remove_if_empty(base)

    @staticmethod
    def _prune(folder: Path, base: Path) -> None:
        """Remove ``folder`` and its parents up to ``base`` while empty (a finished run leaves no folder)."""
        while folder != base and base in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty (another output of the run) or already gone
                if folder.exists():
                    return
            folder = folder.parent

    @staticmethod
    def _swap(new: Path, dest: Path, trash: Path) -> None:
        """Move ``new`` to ``dest``; the old ``dest`` goes to ``trash`` first (two renames)."""
        for junk in list(new.rglob(".*.crc")):
            junk.unlink(missing_ok=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            _make_dirs(trash.parent)
            if trash.exists():
                shutil.rmtree(trash)
            os.replace(dest, trash)
        os.replace(new, dest)

    def abort(self, pending: PendingWrite) -> None:
        with self._lock:
            shutil.rmtree(pending.uri, ignore_errors=True)
            self._finished(Path(pending.uri))

    def put_file(self, rel_path: str, local_file: str) -> None:
        dest = self._abs(rel_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
        shutil.copyfile(local_file, tmp)
        os.replace(tmp, dest)

    def settle(self) -> None:
        """Remove this process's staging and trash folders (no write of it is open any more)."""
        prefix = f"{socket.gethostname()}-{os.getpid()}-"
        self._sweep(lambda entry: entry.name.startswith(prefix))

    def cleanup(self, rel_path: str = "", *, foreign_after: float = FOREIGN_ABANDONED_SECONDS) -> None:
        """Remove abandoned staging/trash folders (``<host>-<pid>-<run id>``).

        This host's are abandoned when their process is gone. Another host's PID cannot be checked from here
        (the root may be shared), so its folders stay unless nothing in them changed for ``foreign_after``
        seconds.
        """
        prefix = f"{socket.gethostname()}-"
        cutoff = time.time() - foreign_after

        def abandoned(entry: Path) -> bool:
            pid = entry.name[len(prefix):].partition("-")[0] if entry.name.startswith(prefix) else ""
            if pid.isdigit():
                return not pid_alive(int(pid))
            return not _changed_since(entry, cutoff)

        self._sweep(abandoned)

    def _sweep(self, doomed: Callable[[Path], bool]) -> None:
        """Finish the commits of doomed runs (their journals), then remove their run folders under the staging
        and trash bases, then empty bases. One sweep at a time on a root (a lock on the root folder)."""
        with _root_lock(self.path):
            kept = self._finish_journals(doomed)
            for base in (self.path / STAGING, self.path / TRASH):
                try:
                    entries = list(base.iterdir())
                except FileNotFoundError:  # none, or another process's run removed the empty base just now
                    continue
                for entry in entries:
                    if entry.name.endswith(".json.tmp") and doomed(entry):  # a journal never put in place
                        entry.unlink(missing_ok=True)
                    if entry.is_dir() and entry.name not in kept and doomed(entry):
                        if base.name == TRASH:
                            self._restore_interrupted(entry)
                        shutil.rmtree(entry, ignore_errors=True)
                _remove_if_empty(base)

    def _finish_journals(self, doomed: Callable[[Path], bool]) -> set[str]:
        """Roll forward the commits that doomed runs had started. Returns the run folders to keep: those of a
        journal that could not be finished (it is tried again by the next cleanup)."""
        kept: set[str] = set()
        base = self.path / STAGING
        try:
            journals = sorted(p for p in base.iterdir() if JOURNAL_MARK in p.name and p.suffix == ".json")
        except FileNotFoundError:
            return kept
        for journal in journals:
            if not doomed(journal):
                continue
            try:
                writes = json.loads(journal.read_text(encoding="utf-8"))["writes"]
                pendings = [(PendingWrite(**{**{k: w[k] for k in _PENDING_FIELDS}, "uri": str(self.path / w["uri"]),
                                             "partition_by": tuple(w["partition_by"]),
                                             "replace_partitions": tuple(w["replace_partitions"])}), w["plan"])
                            for w in writes]
                with self._lock:
                    for pending, plan in pendings:
                        self._commit(pending, plan)
            except (OSError, ValueError, KeyError, TypeError, StorageError) as exc:
                kept |= _journal_runs(journal)
                log.warning("could not finish the commit of an ended run (%s): %s; its staged files are kept "
                            "and the next run tries again", journal.name, exc)
                continue
            journal.unlink(missing_ok=True)
            log.warning("finished the commit of an ended run (run %s): %s",
                        ", ".join(sorted({p.run_id for p, _plan in pendings})),
                        ", ".join(sorted({p.rel_path for p, _plan in pendings})))
        return kept

    def _restore_interrupted(self, run_trash: Path) -> None:
        """Put back what a commit that never finished had moved aside: a folder of ``run_trash`` (it mirrors the
        root) holding data whose place under the root is empty. A commit moves the old output to the trash and
        then the new one into place; a process killed between those two renames leaves neither in place, and the
        previous good output must come back rather than be swept away."""
        todo = [run_trash]
        while todo:
            folder = todo.pop()
            for child in sorted(p for p in folder.iterdir() if p.is_dir()):
                target = self.path / child.relative_to(run_trash)
                if target.exists():
                    todo.append(child)
                elif any(p.is_file() for p in child.rglob("*")):
                    with contextlib.suppress(OSError):  # e.g. another process restored it first
                        _make_dirs(target.parent)
                        os.replace(child, target)
                        log.warning("restored %s from an interrupted commit (%s)", target, run_trash.name)
