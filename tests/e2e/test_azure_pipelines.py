"""End to end on Azurite: generated raw files in a container, ./preprocess.sh and ./analyze.sh with an Azure
config (in the America/New_York time zone), and every dataset read back from the container equals the one a
local-storage run in this session (UTC) produced."""

from __future__ import annotations

import base64
import math
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from engine.config import load_config
from engine.dates import raw_dates
from engine.storage.azure_blob import AzureBlobStorage
from engine.storage.azure_manifest import MANIFEST_NAME
from engine.storage.local import LocalStorage
from tests.azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from tests.in_process import run_pipeline

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _ini(path: Path, root: str, raw_root: str, work: Path, azure: dict[str, str] | None = None) -> Path:
    lines = ["[storage]", f"root = {root}", f"raw_root = {raw_root}", f"cache_dir = {work / 'cache'}",
             "[tracker]", f"sqlite_path = {work / 'tracker.sqlite'}", "[pipeline]", f"log_dir = {work / 'logs'}",
             "[spark]", "master = local[2]", "spark.sql.shuffle.partitions = 4"]
    if azure:
        lines += ["[azure]", *(f"{k} = {v}" for k, v in azure.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(script: str, ini: Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / script), "--config", str(ini)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=900)


def _local_datasets(root: Path) -> list[str]:
    """Folders holding parquet files directly or through partition folders (col=value)."""
    found: list[str] = []

    def walk(folder: Path) -> None:
        children = [c for c in folder.iterdir() if not c.name.startswith((".", "_"))]
        if any(c.is_file() and c.name.endswith(".parquet") for c in children) or \
                any(c.is_dir() and "=" in c.name for c in children):
            found.append(folder.relative_to(root).as_posix())
            return
        for c in children:
            if c.is_dir():
                walk(c)

    walk(root)
    return sorted(found)


def _rows(df) -> list[tuple]:
    cols = sorted(df.columns)
    return sorted((tuple(r) for r in df.select(*cols).collect()), key=repr)


def _same(a: list[tuple], b: list[tuple]) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        for x, y in zip(ra, rb, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                if not (math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(x) and math.isnan(y))):
                    return False
            elif x != y:
                return False
    return True


def test_pipelines_on_azurite_match_a_local_run(spark, azurite: Azurite, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    gen = subprocess.run([sys.executable, "-m", "datagen", "--out", str(raw), "--seed", "11", "--start",
                          "2020-08-05", "--days", "2", "--events", "2000", "--symbols", "3", "--parts", "2",
                          "--bad-rate", "0.005"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert gen.returncode == 0, gen.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKFLOW_")}
    env["PYTHONPATH"] = str(ROOT)

    # the reference: local storage, run in this session's Spark (it only produces the expected datasets; the
    # CLI itself is what the Azure runs below exercise)
    local = tmp_path / "local"
    local_ini = _ini(tmp_path / "local.ini", str(local / "warehouse"), str(raw), local)
    local_config = load_config(local_ini, env=env)
    dates = raw_dates(LocalStorage(raw), ("csv", "json"))
    assert len(dates) == 2, f"datagen --days 2 made raw folders for {dates}"
    for name in ("preprocess", "analyze"):
        for record in run_pipeline(ROOT / "pipelines" / f"{name}.yaml", local_config, dates, spark):
            assert record.status == "success", (
                f"{name} {record.date} (local, in process) ended {record.status}: {record.message}; steps: "
                + ", ".join(f"{s.name}={s.status}" for s in record.steps))

    # the same on Azurite: raw files uploaded to the container, the key given only by the environment
    container = "e2e" + uuid.uuid4().hex[:12]
    azure = {"storage_account": ACCOUNT, "container": container, "endpoint": azurite.endpoint}
    # in another time zone than this session's (UTC here): results must not depend on the machine's zone
    az_env = {**env, "TICKFLOW_AZURE_ACCESS_KEY": ACCOUNT_KEY, "TZ": "America/New_York"}
    work = tmp_path / "az"
    az_ini = _ini(tmp_path / "azure.ini", f"az://{container}/warehouse", f"az://{container}/raw", work, azure)
    config = load_config(az_ini, env=az_env)
    raw_storage = AzureBlobStorage.from_config(f"az://{container}/raw", config)
    raw_storage.access.client.create_container()
    files = sorted(p for p in raw.rglob("*") if p.is_file())
    for path in files:
        raw_storage.put_file(path.relative_to(raw).as_posix(), str(path))
    for script in ("preprocess.sh", "analyze.sh"):
        proc = _run(script, az_ini, az_env, tmp_path)
        assert proc.returncode == 0, f"{script} (azure) failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"

    # every dataset of the local run is in the container, committed, with equal contents
    storage = AzureBlobStorage.from_config(f"az://{container}/warehouse", config)
    expected = _local_datasets(local / "warehouse")
    assert {"trade", "quote", "quarantine"} <= set(expected)
    committed = sorted(b.name[len("warehouse/"):-len(MANIFEST_NAME) - 1]
                       for b in storage.access.list_blobs("warehouse/") if b.name.endswith("/" + MANIFEST_NAME))
    assert committed == expected
    differing = []
    for rel in expected:
        local_df = spark.read.parquet(str(local / "warehouse" / rel))
        azure_df = spark.read.parquet(storage.read_uri(rel))
        assert sorted(local_df.columns) == sorted(azure_df.columns), rel
        local_rows, azure_rows = _rows(local_df), _rows(azure_df)
        assert local_rows or rel not in ("trade", "quote"), f"{rel} is empty: the comparison would prove nothing"
        if not _same(azure_rows, local_rows):
            diff = next((a, b) for a, b in zip(azure_rows + [None], local_rows + [None], strict=False) if a != b)
            differing.append(f"{rel}: {len(azure_rows)} vs {len(local_rows)} rows, first difference {diff}")
    assert not differing, "datasets differ between the Azure and the local run:\n" + "\n".join(differing)

    # every blob a manifest names exists (cleanup never removed committed data)
    for rel in expected:
        referenced = {f"warehouse/{rel}/{b}" for b in storage.manifest(rel).referenced_blobs()}
        present = {b.name for b in storage.access.list_blobs(f"warehouse/{rel}/_runs/")}
        assert referenced <= present, rel

    # a wrong key: exit 2, one line naming account/container/endpoint, the key nowhere
    wrong = base64.b64encode(os.urandom(64)).decode()
    proc = _run("preprocess.sh", az_ini, {**env, "TICKFLOW_AZURE_ACCESS_KEY": wrong}, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"account={ACCOUNT}" in proc.stdout + proc.stderr and "access denied" in proc.stdout + proc.stderr
    logs = "".join(p.read_text(errors="replace") for p in (work / "logs").rglob("*") if p.is_file()) \
        if (work / "logs").exists() else ""
    assert wrong not in proc.stdout + proc.stderr + logs
    assert ACCOUNT_KEY not in logs and ACCOUNT_KEY not in proc.stdout + proc.stderr
