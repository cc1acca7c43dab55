"""A commit killed mid-upload (SIGKILL of a real process) leaves the previous version intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.storage.azure_blob import AzureBlobStorage
from engine.storage.azure_manifest import RUNS_DIR
from tests.azurite import ACCOUNT, ACCOUNT_KEY

N_FILES = 1500
KILL_AFTER_BLOBS = 25

UPLOADER = """
import shutil, sys
from engine.config import load_config
from engine.storage.azure_blob import AzureBlobStorage
root, rel, src = sys.argv[1:4]
storage = AzureBlobStorage.from_config(root, load_config(), workers=2)
pending = storage.begin_write(rel, "killed-run", "overwrite", ["d"])
shutil.copytree(src, pending.uri)
print("uploading", flush=True)
storage.commit(pending)
print("committed", flush=True)
"""


def _tree(folder: str) -> dict[str, str]:
    root = Path(folder)
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def _commit(storage: AzureBlobStorage, files: dict[str, str]) -> None:
    pending = storage.begin_write("trade", "good-run", "overwrite", ["d"])
    for rel, text in files.items():
        path = Path(pending.uri) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    storage.commit(pending)


def test_killed_upload_keeps_previous_version_and_next_commit_cleans(azure_config, azurite, container,
                                                                     repo_root, tmp_path) -> None:
    root = f"az://{container}/wh"
    config = azure_config(container)
    storage = AzureBlobStorage.from_config(root, config, cleanup_grace_seconds=0)
    v1 = {"d=1/part-0.parquet": "v1-a", "d=2/part-0.parquet": "v1-b"}
    _commit(storage, v1)
    manifest_v1 = storage.manifest("trade")

    src = tmp_path / "big"
    for i in range(N_FILES):
        path = src / f"d={i % 5}" / f"part-{i:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"v2-{i}")
    env = {**os.environ, "PYTHONPATH": str(repo_root), "TICKFLOW_AZURE_STORAGE_ACCOUNT": ACCOUNT,
           "TICKFLOW_AZURE_ACCESS_KEY": ACCOUNT_KEY, "TICKFLOW_AZURE_ENDPOINT": azurite.endpoint,
           "TICKFLOW_AZURE_CONTAINER": container, "TICKFLOW_STORAGE_CACHE_DIR": str(tmp_path / "proc-cache")}
    env.pop("TICKFLOW_CONFIG", None)
    proc = subprocess.Popen([sys.executable, "-c", UPLOADER, root, "trade", str(src)], env=env, cwd=repo_root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "uploading"
        referenced = {f"wh/trade/{b}" for b in manifest_v1.referenced_blobs()}
        uploaded = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:  # bounded poll of the container
            uploaded = sum(1 for b in storage.access.list_blobs(f"wh/trade/{RUNS_DIR}/")
                           if b.name not in referenced)
            if uploaded >= KILL_AFTER_BLOBS:
                break
        assert proc.poll() is None, f"the upload finished before it could be killed: {proc.stderr.read()}"
        assert uploaded >= KILL_AFTER_BLOBS
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()

    # the committed version did not move and reads back exactly
    assert storage.manifest("trade") == manifest_v1
    leftovers = [b.name for b in storage.access.list_blobs(f"wh/trade/{RUNS_DIR}/") if b.name not in referenced]
    assert KILL_AFTER_BLOBS <= len(leftovers) < N_FILES
    fresh = AzureBlobStorage.from_config(root, azure_config(container, cache_dir=tmp_path / "reader-cache"))
    assert _tree(fresh.read_uri("trade")) == v1

    # the next run commits a complete version and removes the leftovers
    v3 = {f"d={i}/part-0.parquet": f"v3-{i}" for i in range(3)}
    _commit(storage, v3)
    assert _tree(fresh.read_uri("trade")) == v3
    remaining = {b.name for b in storage.access.list_blobs(f"wh/trade/{RUNS_DIR}/")}
    assert remaining == {f"wh/trade/{b}" for b in storage.manifest("trade").referenced_blobs()}
    assert len(remaining) == len(v3)
