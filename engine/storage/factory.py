"""Chooses the storage backend from the root's scheme."""

from __future__ import annotations

from pathlib import Path

from engine.config import Config, scrub_credentials
from engine.errors import ConfigError
from engine.storage.base import Storage
from engine.storage.local import LocalStorage

AZURE_SCHEMES = ("az://", "abfs://", "abfss://", "wasb://", "wasbs://")


def is_azure(root: str) -> bool:
    return root.lower().startswith(AZURE_SCHEMES)


def shown_root(root: str) -> str:
    """A storage root as a message may show it: a query string (a SAS token: ``?se=...&sig=...``) is left out,
    a password in ``user:password@`` hidden."""
    path, query, _ = root.partition("?")
    return scrub_credentials(path) + ("?…" if query else "")


def open_storage(root: str, config: Config) -> Storage:
    if is_azure(root):
        if config.azure is None:
            raise ConfigError(f"storage root {shown_root(root)} is in Azure but the config has no [azure] section "
                              f"(storage_account, container, access_key or connection_string)")
        if config.storage.mode == "direct":
            from engine.storage.azure_direct import AzureDirectStorage

            return AzureDirectStorage.from_config(root, config)
        from engine.storage.azure_blob import AzureBlobStorage

        return AzureBlobStorage.from_config(root, config)
    if "://" in root and not root.startswith("file://"):
        raise ConfigError(f"unsupported storage root '{shown_root(root)}': use a local folder or "
                          f"az://container/prefix")
    path = Path(root.removeprefix("file://"))
    if not path.is_absolute():
        path = config.base_dir / path
    return LocalStorage(path)
