"""Helpers shared by the tests of the staged Azure backend and of its cache (against Azurite)."""

from __future__ import annotations

from pathlib import Path

from engine.storage.azure_blob import AzureBlobStorage


def _storage(azure_config, container: str, root: str = "", **options) -> AzureBlobStorage:
    options.setdefault("cleanup_grace_seconds", 0.0)
    return AzureBlobStorage.from_config(root or f"az://{container}/wh", azure_config(container), **options)


def _tree(folder: str | Path) -> dict[str, str]:
    root = Path(folder)
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}
