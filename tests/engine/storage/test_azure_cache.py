"""The local cache of a staged Azure read (engine.storage.azure_cache): copies fetched only when their ETag changed,
an index shared by runs and processes, views that never change once built, and pruning what was unused."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from azure.core.exceptions import ResourceNotFoundError

from engine.errors import StorageError
from engine.storage.azure_blob import AzureBlobStorage
from engine.storage.azure_cache import BlobCache, BlobRef, BlobVanished, TransferStats
from tests.engine.storage.blob_helpers import _storage, _tree

# -- the cache alone, over a container that only answers downloads ---------------------------------------------

class Container:
    """Blobs by name as (content, ETag); downloads answer with the ETag quoted, as the SDK's do."""

    def __init__(self, **blobs: bytes):
        self.blobs = {name: (data, f"etag-{name}-1") for name, data in blobs.items()}
        self.downloads: list[str] = []

    def put(self, name: str, data: bytes, etag: str) -> None:
        self.blobs[name] = (data, etag)

    def download_blob(self, name: str, max_concurrency: int = 1) -> SimpleNamespace:
        if name not in self.blobs:
            raise ResourceNotFoundError("The specified blob does not exist.")
        data, etag = self.blobs[name]
        self.downloads.append(name)
        return SimpleNamespace(readinto=lambda fh: fh.write(data), properties=SimpleNamespace(etag=f'"{etag}"'))


def _cache(root: Path, container: Container) -> BlobCache:
    access = SimpleNamespace(client=container, errors=lambda action: contextlib.nullcontext(),
                             target=SimpleNamespace(where="account=acct container=c"))
    return BlobCache(root, access, TransferStats(), workers=2)  # type: ignore[arg-type]


def _refs(container: Container, *names: str) -> list[BlobRef]:
    """As a listing gives them: bare ETags."""
    return [BlobRef(n, container.blobs[n][1], len(container.blobs[n][0])) for n in names]


def test_a_copy_is_fetched_once_and_again_only_when_its_etag_changed(tmp_path):
    container = Container(**{"raw/a.txt": b"a\n", "raw/b.txt": b"bb\n"})
    cache = _cache(tmp_path, container)
    assert cache.fetch(_refs(container, "raw/a.txt", "raw/b.txt")) == (2, 0)
    assert cache.local_path("raw/b.txt").read_bytes() == b"bb\n" and cache.version("raw/b.txt") == "etag-raw/b.txt-1"
    assert cache.fetch(_refs(container, "raw/a.txt", "raw/b.txt")) == (0, 2)  # bare and quoted ETags compare equal
    container.put("raw/b.txt", b"corrected\n", "etag-raw/b.txt-2")
    again = _cache(tmp_path, container)  # another run: the index on disk is shared
    assert again.fetch(_refs(container, "raw/a.txt", "raw/b.txt")) == (1, 1)
    assert again.local_path("raw/b.txt").read_bytes() == b"corrected\n"
    assert sorted(container.downloads) == ["raw/a.txt", "raw/b.txt", "raw/b.txt"]  # fetched in parallel
    assert (again.stats.downloaded, again.stats.unchanged, again.stats.download_bytes) == (1, 1, len(b"corrected\n"))
    assert cache.fetch([BlobRef("raw/a.txt", None, None)]) == (1, 0)  # no ETag known: fetched


def test_a_blob_deleted_while_it_is_read_is_named_and_leaves_no_partial_copy(tmp_path):
    container = Container(**{"wh/ds/_runs/w1/part-0": b"x"})
    cache = _cache(tmp_path, container)
    refs = _refs(container, "wh/ds/_runs/w1/part-0")
    del container.blobs["wh/ds/_runs/w1/part-0"]  # a concurrent commit cleaned it
    with pytest.raises(BlobVanished, match="blob 'wh/ds/_runs/w1/part-0' vanished while reading "
                                           "\\(account=acct container=c\\)") as info:
        cache.fetch(refs)
    assert isinstance(info.value, StorageError)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []
    assert cache.version("wh/ds/_runs/w1/part-0") == ""


def test_a_view_is_hard_linked_from_the_copies_and_never_changed_once_built(tmp_path):
    container = Container(**{"wh/ds/d=1/p0": b"v1", "wh/ds/d=2/p0": b"v1"})
    cache = _cache(tmp_path, container)
    cache.fetch(_refs(container, "wh/ds/d=1/p0", "wh/ds/d=2/p0"))
    view = tmp_path / "views" / "key1" / "ds"
    with cache.staging() as held:
        assert held
        cache.build_view(view, {"d=1/p0": "wh/ds/d=1/p0", "d=2/p0": "wh/ds/d=2/p0"})
        cache.build_view(view, {"d=1/p0": "wh/ds/d=1/p0"})  # the key is there already: reused as it is
    assert _tree(view) == {"d=1/p0": "v1", "d=2/p0": "v1"}
    assert os.stat(view / "d=1/p0").st_ino == cache.local_path("wh/ds/d=1/p0").stat().st_ino
    assert [p.name for p in (tmp_path / "views").iterdir()] == ["key1"]  # nothing left aside


def test_transfer_stats_add_up_across_threads():
    stats = TransferStats()

    def add() -> None:
        for _ in range(1000):
            stats.add(downloaded=1, download_bytes=3)

    threads = [threading.Thread(target=add) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (stats.downloaded, stats.download_bytes, stats.unchanged) == (4000, 12000, 0)


# -- pruning, through the staged backend against Azurite -----------------------------------------------------------


def _age_cache(storage: AzureBlobStorage, prefix: str, days: float) -> None:
    """Make the cached copies under ``prefix`` and the views of that dataset look unused for ``days``."""
    cache = storage.cache
    then = time.time() - days * 86400
    index = json.loads((cache.root / "index.json").read_text())
    for name, entry in index.items():
        if name.startswith(prefix):
            index[name] = [*entry[:2], then]
    (cache.root / "index.json").write_text(json.dumps(index))
    for key_dir in (cache.root / "views").iterdir():
        if any(p.as_posix().endswith(prefix.rstrip("/")) for p in key_dir.rglob("*") if p.is_dir()):
            os.utime(key_dir, (then, then))


def test_cache_prune_removes_what_was_unused_for_keep_days(azure_config, container, tmp_path, caplog) -> None:
    root = f"az://{container}/raw"
    first = _storage(azure_config, container, root=root, cache_keep_days=2)
    days = {"2020-08-05": {"NYSE/part-00000.txt": "a\n", "NYSE/part-00001.txt": "bb\n"},
            "2020-08-06": {"NYSE/part-00000.txt": "c\n", "NASDAQ/part-00000.txt": "d\n"}}
    for day, files in days.items():
        for rel, text in files.items():
            src = tmp_path / "src" / day / rel
            src.parent.mkdir(parents=True, exist_ok=True)
            src.write_text(text)
            first.put_file(f"csv/{day}/{rel}", str(src))
    views = {day: first.read_uri(f"csv/{day}") for day in days}
    old_copies = [p for p in first.cache.blobs.rglob("*") if p.is_file() and "2020-08-05" in p.as_posix()]
    assert len(old_copies) == 2 and all(p.stat().st_nlink == 2 for p in old_copies)  # store + view

    # a day unused for 3 days, another for 1: a new run (storage object) prunes only the first
    _age_cache(first, "raw/csv/2020-08-05/", 3)
    _age_cache(first, "raw/csv/2020-08-06/", 1)
    # files no index entry names (a download killed before its entry was saved): removed once as old
    orphans = [first.cache.blobs / "raw" / "csv" / f".part-{age}.tmp" for age in ("old", "new")]
    for orphan in orphans:
        orphan.write_text("xyz")
    os.utime(orphans[0], (time.time() - 3 * 86400,) * 2)
    later = _storage(azure_config, container, root=root, cache_keep_days=2)
    with caplog.at_level(logging.INFO, logger="engine.storage.azure_blob"):
        assert _tree(later.read_uri("csv/2020-08-06")) == days["2020-08-06"]
    assert later.stats.downloaded == 0
    assert not any(p.exists() for p in old_copies)
    assert not Path(views["2020-08-05"]).exists() and Path(views["2020-08-06"]).exists()
    # the removed view's lock file goes with it; the kept view's stays
    view_locks = sorted(p.name for p in (later.cache.root / "locks").glob("view-*.lock"))
    assert view_locks == [f"view-{Path(views['2020-08-06']).relative_to(later.cache.root / 'views').parts[0]}.lock"]
    index = json.loads((later.cache.root / "index.json").read_text())
    assert sorted(index) == sorted(f"raw/csv/2020-08-06/{rel}" for rel in days["2020-08-06"])
    assert "removed 3 cached file(s)" in caplog.text and "1 view(s)" in caplog.text
    assert not orphans[0].exists() and orphans[1].exists()
    assert not (later.cache.blobs / "raw" / "csv" / "2020-08-05").exists()  # empty folders go too

    # the pruned day is simply downloaded again when read
    assert _tree(later.read_uri("csv/2020-08-05")) == days["2020-08-05"]
    assert later.stats.downloaded == 2


def test_cache_prune_skips_while_another_process_stages(azure_config, container, tmp_path) -> None:
    root = f"az://{container}/raw"
    first = _storage(azure_config, container, root=root, cache_keep_days=1)
    src = tmp_path / "a.txt"
    src.write_text("a\n")
    first.put_file("csv/2020-08-05/NYSE/part-00000.txt", str(src))
    first.read_uri("csv/2020-08-05")
    _age_cache(first, "raw/csv/2020-08-05/", 5)
    # another process holds the staging lock (shared) while it downloads: prune neither waits nor removes
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys; fh = open(sys.argv[1], 'a'); fcntl.flock(fh, fcntl.LOCK_SH); "
         "print('held', flush=True); sys.stdin.read()", str(first.cache.root / "locks" / "cache.lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert first.cache.prune(86400.0) is None
        assert len([p for p in first.cache.blobs.rglob("*") if p.is_file()]) == 1
    finally:
        holder.communicate("")
    assert first.cache.prune(86400.0) == (1, 2, 1)
