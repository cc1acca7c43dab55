"""Local-folder storage: Spark writes aside under ``.tickflow/staging``, commit renames into place."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

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
log = logging.getLogger("tickflow.storage")


def _changed_since(folder: Path, cutoff: float) -> bool:
    """True when ``folder`` or anything below it was modified after ``cutoff`` (epoch seconds)."""
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
        with self._lock:
            try:
                self._commit(pending)
            finally:  # a failed commit still ends the write, or the run's staging folder would stay
                self._finished(Path(pending.uri))

    def _commit(self, pending: PendingWrite) -> None:
        staged = Path(pending.uri)
        target = self._abs(pending.rel_path)
        trash = self.path / TRASH / staged.relative_to(self.path / STAGING)
        target.parent.mkdir(parents=True, exist_ok=True)
        if pending.mode == "append":
            added = set()
            for src in sorted(staged.rglob("*")):
                if src.is_file() and not src.name.startswith(("_", ".")):
                    dest = target / src.relative_to(staged)
                    if pending.owner:
                        dest = dest.with_name(owned_name(pending.owner, dest.name))
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dest)
                    added.add(dest)
            if pending.owner:
                self._drop_owned(target, pending, added)
        elif pending.mode == "overwrite_partitions" and pending.partition_by:
            written = set()
            for part in _leaf_partitions(staged, len(pending.partition_by)):
                rel = part.relative_to(staged)
                written.add(rel.as_posix())
                self._swap(part, target / rel, trash / rel)
            for key in pending.replace_partitions:
                if key not in written and (target / key).exists():
                    _make_dirs((trash / key).parent)
                    os.replace(target / key, trash / key)
        else:
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
        """Remove the run folders under the staging and trash bases that are ``doomed``, then empty bases."""
        for base in (self.path / STAGING, self.path / TRASH):
            try:
                entries = list(base.iterdir())
            except FileNotFoundError:  # none, or another process's run removed the empty base just now
                continue
            for entry in entries:
                if doomed(entry):
                    if base.name == TRASH:
                        self._restore_interrupted(entry)
                    shutil.rmtree(entry, ignore_errors=True)
            _remove_if_empty(base)

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
