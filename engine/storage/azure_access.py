"""Both Azure backends, staged and direct, talk to their container the same way, so resolving the root, setting
up the SDK (retries, timeouts, connection pool) and turning its errors into one-line StorageErrors is written once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
import requests.adapters
from azure.core.exceptions import ResourceNotFoundError
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobPrefix, ContainerClient, ExponentialRetry

from engine.config import AzureConfig
from engine.errors import ConfigError, StorageError
from engine.storage.azure_errors import AzureWhere, azure_secrets, translate_errors
from engine.storage.azure_uri import (
    AzureLocation,
    account_from_endpoint,
    clean_rel_path,
    parse_azure_uri,
    parse_connection_string,
)
from engine.storage.base import FileStamp, is_hidden_path


@dataclass(frozen=True)
class RetrySettings:
    """The SDK's ExponentialRetry (5xx, timeouts, connection resets) and the transport timeouts."""

    total: int = 4
    initial_backoff: float = 1.0
    increment_base: float = 2.0
    jitter: float = 0.5
    connection_timeout: float = 10.0
    read_timeout: float = 120.0


@dataclass(frozen=True)
class AzureTarget:
    """A resolved root: which account/container/prefix, the blob endpoint, and how to authenticate."""

    account: str
    container: str
    prefix: str
    endpoint: str
    credential: Any = field(default=None, repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    location: AzureLocation | None = None

    @property
    def where(self) -> AzureWhere:
        return AzureWhere(self.account, self.container, self.endpoint)

    def blob_path(self, rel_path: str) -> str:
        rel = clean_rel_path(rel_path)
        return "/".join(p for p in (self.prefix, rel) if p)


def resolve_target(root_uri: str, az: AzureConfig | None) -> AzureTarget:
    """Combine the root URI with ``[azure]``: account, key or connection string, endpoint."""
    if az is None:
        raise ConfigError(f"storage root '{root_uri}' is in Azure but the config has no [azure] section "
                          f"(storage_account and access_key, or connection_string)")
    loc = parse_azure_uri(root_uri, default_container=az.container)
    secrets = tuple(azure_secrets(az))
    credential: Any = None
    if az.connection_string:
        parts = parse_connection_string(az.connection_string)
        account = parts.account or az.storage_account or (loc.account or "")
        suffix = parts.endpoint_suffix or "core.windows.net"
        endpoint = az.endpoint or parts.blob_endpoint or f"{parts.protocol}://{account}.blob.{suffix}"
        account = account or account_from_endpoint(endpoint)
        if parts.account_key:
            credential = {"account_name": account, "account_key": parts.account_key}
        elif parts.sas_token:
            credential = parts.sas_token
    else:
        account = az.storage_account or (loc.account or "")
        if not account:
            raise ConfigError(f"storage root '{root_uri}': [azure] storage_account is not set")
        endpoint = az.endpoint or f"https://{account}.blob.core.windows.net"
        if az.access_key:
            credential = {"account_name": account, "account_key": az.access_key}
    if loc.account and account and loc.account != account:
        raise ConfigError(f"storage root '{root_uri}' names account '{loc.account}' but [azure] configures "
                          f"account '{account}'")
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"[azure] endpoint '{endpoint}' must start with http:// or https://")
    return AzureTarget(account=account, container=loc.container, prefix=loc.prefix,
                       endpoint=endpoint.rstrip("/"), credential=credential, secrets=secrets, location=loc)


def build_container_client(target: AzureTarget, retry: RetrySettings, api_version: str | None = None
                           ) -> ContainerClient:
    """A ContainerClient whose retries and timeouts are the SDK's policy, configured here."""
    http_log = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
    if http_log.level == logging.NOTSET:  # one INFO line per request otherwise; headers are redacted anyway
        http_log.setLevel(logging.WARNING)
    policy = ExponentialRetry(initial_backoff=retry.initial_backoff, increment_base=retry.increment_base,
                              retry_total=retry.total, random_jitter_range=retry.jitter)
    kwargs: dict[str, Any] = {"retry_policy": policy, "connection_timeout": retry.connection_timeout,
                              "read_timeout": retry.read_timeout}
    if api_version:
        kwargs["api_version"] = api_version
    kwargs["transport"] = RequestsTransport(session=_pooled_session(), session_owner=True)
    with translate_errors("create the client", target.where, target.secrets):
        return ContainerClient(target.endpoint, target.container, credential=target.credential, **kwargs)


# Transfers at once: 8 per read or write, each blob in up to 2 ranges, two steps reading at a time. The requests
# default keeps 10 connections per host: the rest were dropped after use, each drop logged as a console warning
# ("Connection pool is full, discarding connection").
_POOL_SIZE = 64


def _pooled_session() -> requests.Session:
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=_POOL_SIZE)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class BlobAccess:
    """Thin, error-translating access to one container, shared by the staged and direct backends."""

    def __init__(self, target: AzureTarget, retry: RetrySettings | None = None, api_version: str | None = None):
        self.target = target
        self.client = build_container_client(target, retry or RetrySettings(), api_version)

    def errors(self, action: str):
        return translate_errors(action, self.target.where, self.target.secrets)

    def check(self, action: str = "check the container") -> None:
        """One page of one blob name: a listing is what every read needs, and unlike the container's
        properties a container-scoped SAS (the usual least-privilege grant) may do it."""
        with self.errors(action):
            next(iter(self.client.list_blobs(results_per_page=1).by_page()), None)

    def get_bytes(self, name: str) -> tuple[bytes, str] | None:
        """Content and ETag of a blob, or None when it does not exist."""
        with self.errors(f"read '{name}'"):
            try:
                downloader = self.client.download_blob(name)
                return downloader.readall(), downloader.properties.etag
            except ResourceNotFoundError:
                return None

    def blob_exists(self, name: str) -> bool:
        with self.errors(f"look up '{name}'"):
            return self.client.get_blob_client(name).exists()

    def upload_file(self, name: str, local_file: str | os.PathLike[str]) -> tuple[str, int]:
        """Upload (replacing) one blob; returns its ETag and size."""
        size = os.path.getsize(local_file)
        with self.errors(f"upload '{name}'"), open(local_file, "rb") as fh:
            result = self.client.get_blob_client(name).upload_blob(fh, overwrite=True, length=size,
                                                                   max_concurrency=2)
        return result["etag"], size

    def put_bytes(self, name: str, data: bytes) -> None:
        """Upload (replacing) one small blob from memory."""
        with self.errors(f"upload '{name}'"):
            self.client.get_blob_client(name).upload_blob(data, overwrite=True)

    def copy(self, source: str, dest: str) -> None:
        """Copy one small blob through this process (no server-side copy: that needs the source authorised)."""
        got = self.get_bytes(source)
        if got is None:
            raise StorageError(f"Azure storage: '{source}' vanished before it could be copied ({self.target.where})")
        self.put_bytes(dest, got[0])

    def list_blobs(self, prefix: str, metadata: bool = False) -> list[Any]:
        with self.errors(f"list '{prefix}'"):
            return list(self.client.list_blobs(name_starts_with=prefix,
                                               include=["metadata"] if metadata else None))

    def list_dirs(self, prefix: str, include_hidden: bool = False) -> list[str]:
        """Virtual sub-folders right under ``prefix``; hidden ones ('_', '.') only when asked."""
        start = prefix + "/" if prefix else ""
        with self.errors(f"list '{prefix or '/'}'"):
            names = {item.name[len(start):].strip("/") for item in self.client.walk_blobs(start, delimiter="/")
                     if isinstance(item, BlobPrefix)}
        return sorted(n for n in names if n and (include_hidden or not is_hidden_path(n)))

    def file_stamps(self, prefix: str) -> list[FileStamp]:
        """Every blob below ``prefix`` (a virtual folder) but folder markers and hidden names, sorted."""
        start = prefix + "/" if prefix else ""
        found = [FileStamp(b.name[len(start):], int(b.size or 0), str(b.etag or ""),
                           int(b.last_modified.timestamp() * 1e9) if b.last_modified else 0)
                 for b in self.list_blobs(start) if not is_folder_marker(b)]
        return sorted((f for f in found if not is_hidden_path(f.name)), key=lambda f: f.name)

    def walk_names(self, start: str) -> list[str]:
        """Names of the blobs and virtual folders right under ``start`` (which ends with '/')."""
        with self.errors(f"list '{start or '/'}'"):
            return [item.name for item in self.client.walk_blobs(start, delimiter="/")]

    def has_visible_data(self, prefix: str) -> bool:
        """True when a blob or folder not hidden ('_', '.') sits right under ``prefix``."""
        start = prefix + "/" if prefix else ""
        with self.errors(f"list '{prefix or '/'}'"):
            for item in self.client.walk_blobs(start, delimiter="/"):
                if not is_hidden_path(item.name[len(start):].strip("/")):
                    return True
        return False

    def delete(self, names: Iterable[str], workers: int) -> int:
        names = list(names)

        def one(name: str) -> int:
            with self.errors(f"delete '{name}'"):
                try:
                    self.client.delete_blob(name)
                    return 1
                except ResourceNotFoundError:
                    return 0

        return sum(parallel(one, names, workers))


def parallel(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> list[Any]:
    if not items:
        return []
    if workers <= 1 or len(items) == 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="azure-xfer") as pool:
        return list(pool.map(fn, items))


def is_folder_marker(blob: Any) -> bool:
    """Empty blobs standing for folders (ADLS Gen2, some tools) are not data."""
    meta = getattr(blob, "metadata", None) or {}
    return blob.name.endswith("/") or (blob.size == 0 and str(meta.get("hdi_isfolder", "")).lower() == "true")
