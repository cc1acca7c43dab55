"""Fixtures for the storage tests: one Azurite for the session, a fresh container per test."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from engine.config import AzureConfig, Config, StorageConfig
from tests.azurite import ACCOUNT, ACCOUNT_KEY, Azurite


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
