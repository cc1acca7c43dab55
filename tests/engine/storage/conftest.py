"""Fixtures for the storage tests: one Azurite for the session, a fresh container per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import AzureConfig, Config, StorageConfig
from tests.azurite import ACCOUNT, ACCOUNT_KEY, Azurite, AzuriteError, azurite_binary, start_azurite


@pytest.fixture(scope="session")
def azurite(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
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


@pytest.fixture
def container(azurite: Azurite) -> str:
    """A new, empty container (tests never share data)."""
    from azure.storage.blob import ContainerClient

    name = "t" + uuid.uuid4().hex[:20]
    client = ContainerClient(azurite.endpoint, name,
                             credential={"account_name": ACCOUNT, "account_key": ACCOUNT_KEY})
    client.create_container()
    client.close()
    return name


@pytest.fixture
def azure_config(azurite: Azurite, tmp_path: Path):
    """Factory: a Config pointing at Azurite; keyword arguments override [azure] values."""

    def make(container: str, cache_dir: Path | None = None, **azure: str) -> Config:
        values = {"storage_account": ACCOUNT, "container": container, "access_key": ACCOUNT_KEY,
                  "endpoint": azurite.endpoint, **azure}
        cache = cache_dir or tmp_path / "cache"
        return Config(azure=AzureConfig(**values), storage=StorageConfig(cache_dir=str(cache)),
                      base_dir=tmp_path)

    return make
