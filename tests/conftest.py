"""Shared fixtures: one SparkSession for the whole test session (a JVM costs ~9 s to start)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.azurite import Azurite, AzuriteError, azurite_binary, start_azurite

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark():
    from engine.spark import build_session

    session = build_session("local[2]", {"spark.sql.shuffle.partitions": "4", "spark.driver.memory": "2g"},
                            app_name="tickflow-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def azurite(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite blob server (from node_modules, on a free loopback port) for every test that needs one; each
    test uses containers of its own."""
    if azurite_binary(repo_root) is None:
        message = f"azurite is not installed (run `npm install` in {repo_root})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        server = start_azurite(repo_root, tmp_path_factory.mktemp("azurite"))
    except AzuriteError as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def shared_sample() -> Path:
    """The real public sample; present beside the checkout in sessions and in CI."""
    path = ROOT.parent / "shared" / "data" / "springboard-sample"
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"the shared sample is missing at {path}")
        pytest.skip(f"no shared sample at {path}")
    return path
