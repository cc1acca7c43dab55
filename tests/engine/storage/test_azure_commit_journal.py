"""A step's writes to Azure are published as one: a process killed between two manifests (SIGKILL of a real
process) has the rest published by the next cleanup, from the journal blob it wrote first."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from engine.storage.azure_blob import JOURNALS_DIR, AzureBlobStorage
from tests.azurite import ACCOUNT, ACCOUNT_KEY

COMMITTER = """
import os, signal, sys
from pathlib import Path
from engine.config import load_config
from engine.storage.azure_blob import AzureBlobStorage
root = sys.argv[1]
storage = AzureBlobStorage.from_config(root, load_config(), workers=2)
pendings = []
for rel, text in (("trade", "new trade"), ("quote", "new quote")):
    pending = storage.begin_write(rel, "r2", "overwrite_partitions", ["trade_dt"])
    (Path(pending.uri) / "trade_dt=D1").mkdir(parents=True)
    (Path(pending.uri) / "trade_dt=D1" / "part-0.parquet").write_text(text)
    pendings.append(pending)
real_put = AzureBlobStorage._put_manifest
def put_then_die(self, rel_path, manifest, etag):
    real_put(self, rel_path, manifest, etag)
    os.kill(os.getpid(), signal.SIGKILL)  # the first manifest is in, the second not
AzureBlobStorage._put_manifest = put_then_die
storage.commit_all(pendings)
"""


def _write(storage: AzureBlobStorage, rel: str, files: dict[str, str]) -> None:
    pending = storage.begin_write(rel, "r1", "overwrite_partitions", ["trade_dt"])
    for name, text in files.items():
        (Path(pending.uri) / name).parent.mkdir(parents=True, exist_ok=True)
        (Path(pending.uri) / name).write_text(text)
    storage.commit(pending)


def _day(storage: AzureBlobStorage, rel: str) -> dict[str, str]:
    root = Path(storage.read_uri(rel))
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*.parquet"))}


def _killed_between_manifests(azurite, container: str, repo_root: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(repo_root), "TICKFLOW_AZURE_STORAGE_ACCOUNT": ACCOUNT,
           "TICKFLOW_AZURE_ACCESS_KEY": ACCOUNT_KEY, "TICKFLOW_AZURE_ENDPOINT": azurite.endpoint,
           "TICKFLOW_AZURE_CONTAINER": container, "TICKFLOW_STORAGE_CACHE_DIR": str(tmp_path / "proc-cache")}
    env.pop("TICKFLOW_CONFIG", None)
    proc = subprocess.run([sys.executable, "-c", COMMITTER, f"az://{container}/wh"], env=env, cwd=repo_root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr


def _old_day(azure_config, container: str) -> AzureBlobStorage:
    storage = AzureBlobStorage.from_config(f"az://{container}/wh", azure_config(container))
    _write(storage, "trade", {"trade_dt=D1/part-0.parquet": "old trade", "trade_dt=D0/part-0.parquet": "before"})
    _write(storage, "quote", {"trade_dt=D1/part-0.parquet": "old quote"})
    return storage


def test_a_commit_killed_between_two_manifests_is_finished_by_the_next_cleanup(azure_config, azurite, container,
                                                                               repo_root, tmp_path) -> None:
    storage = _old_day(azure_config, container)
    _killed_between_manifests(azurite, container, repo_root, tmp_path)
    journals = storage.access.list_blobs(f"wh/{JOURNALS_DIR}/")
    assert len(journals) == 1
    assert _day(storage, "trade")["trade_dt=D1/part-0.parquet"] == "new trade"
    assert _day(storage, "quote") == {"trade_dt=D1/part-0.parquet": "old quote"}  # half published

    fresh = AzureBlobStorage.from_config(f"az://{container}/wh", azure_config(container, tmp_path / "c2"),
                                         cleanup_grace_seconds=0)
    fresh.cleanup("")
    assert _day(fresh, "quote") == {"trade_dt=D1/part-0.parquet": "new quote"}
    assert _day(fresh, "trade") == {"trade_dt=D0/part-0.parquet": "before", "trade_dt=D1/part-0.parquet": "new trade"}
    assert storage.access.list_blobs(f"wh/{JOURNALS_DIR}/") == []
    # every blob left is one a manifest names (the old versions and nothing of the journal's writes went)
    for rel in ("trade", "quote"):
        referenced = {f"wh/{rel}/{b}" for b in fresh.manifest(rel).referenced_blobs()}
        assert {b.name for b in fresh.access.list_blobs(f"wh/{rel}/_runs/")} == referenced


def test_a_dataset_written_since_is_not_rolled_back_to_the_ended_commit(azure_config, azurite, container,
                                                                         repo_root, tmp_path) -> None:
    storage = _old_day(azure_config, container)
    _killed_between_manifests(azurite, container, repo_root, tmp_path)
    _write(storage, "quote", {"trade_dt=D1/part-0.parquet": "a later run's quote"})
    storage.cleanup("")
    assert _day(storage, "quote") == {"trade_dt=D1/part-0.parquet": "a later run's quote"}
    assert storage.access.list_blobs(f"wh/{JOURNALS_DIR}/") == []


def test_a_journal_of_a_live_process_or_of_another_host_within_the_grace_period_is_left(azure_config, container,
                                                                                       tmp_path) -> None:
    storage = _old_day(azure_config, container)
    for host, pid in ((socket.gethostname(), os.getpid()), ("elsewhere", 1)):
        storage.access.put_bytes(f"wh/{JOURNALS_DIR}/{host}-{pid}-x.json", json.dumps(
            {"host": host, "pid": pid, "writes": [{"rel_path": "quote", "write_id": "w", "etag": None}]}).encode())
    storage.cleanup("")
    assert len(storage.access.list_blobs(f"wh/{JOURNALS_DIR}/")) == 2
    assert _day(storage, "quote") == {"trade_dt=D1/part-0.parquet": "old quote"}


KILL_AFTER_FIRST = """    real_put(self, rel_path, manifest, etag)
    os.kill(os.getpid(), signal.SIGKILL)  # the first manifest is in, the second not"""
FAIL_ON_QUOTE = """    if rel_path == "quote":  # e.g. the link is lost after the trade manifest was written
        from engine.errors import StorageError
        raise StorageError("Azure storage: commit 'wh/quote/_manifest.json' failed: cannot reach the endpoint")
    real_put(self, rel_path, manifest, etag)"""
FAILING_COMMITTER = COMMITTER.replace(KILL_AFTER_FIRST, FAIL_ON_QUOTE)


def test_a_commit_whose_second_manifest_fails_keeps_its_journal_for_the_next_run(azure_config, azurite, container,
                                                                                   repo_root, tmp_path) -> None:
    """The process lives on (the step fails) with the trade manifest out and the quote one not: the journal
    stays, and the next run's cleanup publishes the quotes, also when another date was written meanwhile."""
    storage = _old_day(azure_config, container)
    env = {**os.environ, "PYTHONPATH": str(repo_root), "TICKFLOW_AZURE_STORAGE_ACCOUNT": ACCOUNT,
           "TICKFLOW_AZURE_ACCESS_KEY": ACCOUNT_KEY, "TICKFLOW_AZURE_ENDPOINT": azurite.endpoint,
           "TICKFLOW_AZURE_CONTAINER": container, "TICKFLOW_STORAGE_CACHE_DIR": str(tmp_path / "proc-cache")}
    env.pop("TICKFLOW_CONFIG", None)
    proc = subprocess.run([sys.executable, "-c", FAILING_COMMITTER, f"az://{container}/wh"], env=env,
                          cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "cannot reach the endpoint" in proc.stderr
    assert "1 of 2 outputs were published when the commit failed" in proc.stderr
    assert len(storage.access.list_blobs(f"wh/{JOURNALS_DIR}/")) == 1
    _write(storage, "quote", {"trade_dt=D2/part-0.parquet": "another date"})  # a concurrent run's date
    storage.cleanup("")
    assert _day(storage, "quote") == {"trade_dt=D1/part-0.parquet": "new quote",
                                      "trade_dt=D2/part-0.parquet": "another date"}
    assert storage.access.list_blobs(f"wh/{JOURNALS_DIR}/") == []


def test_two_writers_committing_one_dataset_at_once_merge(azure_config, container, tmp_path) -> None:
    """The second writer's conditional manifest write fails (412, or 409 for the first manifest): it reads the
    new manifest and merges its partitions in, instead of failing the run."""
    first = AzureBlobStorage.from_config(f"az://{container}/wh", azure_config(container))
    other = AzureBlobStorage.from_config(f"az://{container}/wh", azure_config(container, tmp_path / "other"))
    for existing in (False, True):
        if existing:
            _write(first, "trade", {"trade_dt=D0/part-0.parquet": "day 0"})
        real_read = first._read_manifest
        raced = []

        def read_then_race(rel_path, real_read=real_read, raced=raced, existing=existing):
            got = real_read(rel_path)
            if not raced:  # the other writer commits between our read and our write
                raced.append(1)
                _write(other, "trade", {f"trade_dt=O{int(existing)}/part-0.parquet": "other"})
            return got

        first._read_manifest = read_then_race
        _write(first, "trade", {f"trade_dt=F{int(existing)}/part-0.parquet": "first"})
        first._read_manifest = real_read
        assert raced
        expected = {f"trade_dt=F{int(existing)}/part-0.parquet", f"trade_dt=O{int(existing)}/part-0.parquet"}
        assert expected <= set(_day(first, "trade"))
