"""Azure direct mode: Spark reads and writes abfss:// URIs itself (clusters with hadoop-azure).

The engine only translates the root into abfss:// URIs and ``[azure]`` into the ABFS connector's Hadoop
settings (``spark.hadoop.fs.azure.account.key.<account>.dfs.core.windows.net``...). Atomicity is Spark's
output committer's: data is written under ``_temporary``/``.spark-staging-*`` and moved into place at job
commit, which then writes ``_SUCCESS``; readers treat a dataset as committed only when ``_SUCCESS`` is
there, and ``commit`` verifies it. Metadata calls (exists, list_dirs, check, put_file) use the Blob SDK.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from engine.config import Config
from engine.errors import ConfigError, StorageError
from engine.storage.azure_blob import AzureTarget, BlobAccess, RetrySettings, _hidden, _is_folder_marker, resolve_target
from engine.storage.azure_errors import scrub
from engine.storage.azure_uri import abfss_uri, clean_rel_path, dfs_suffix_for, parse_connection_string
from engine.storage.base import PendingWrite, Storage, check_write_mode, is_owned, owned_name

log = logging.getLogger(__name__)

SUCCESS_MARKER = "_SUCCESS"
LEFTOVER_DIRS = ("_temporary/", ".spark-staging-")
# A write with an owner goes to <dataset>/_owned/<write_id>/ first (hidden from Spark's readers), and commit
# copies its files into the partitions under the owner's names: Spark cannot name the files it writes.
OWNED_STAGING = "_owned"
_SAFE_ID_RE = re.compile(r"[^A-Za-z0-9._-]+")


def direct_credentials(config: Config) -> tuple[str, str]:
    """(account key, SAS token) from ``[azure]``: access_key, or the connection string's parts."""
    az = config.azure
    if az is None:
        return "", ""
    if az.access_key:
        return az.access_key, ""
    if az.connection_string:
        parts = parse_connection_string(az.connection_string)
        return parts.account_key, parts.sas_token.lstrip("?")
    return "", ""


def abfs_hadoop_conf(account: str, dfs_suffix: str, account_key: str, sas_token: str) -> dict[str, str]:
    """The ABFS connector's settings for one account (shared key, else a fixed SAS token)."""
    host = f"{account}.{dfs_suffix}"
    if account_key:
        conf = {f"fs.azure.account.auth.type.{host}": "SharedKey", f"fs.azure.account.key.{host}": account_key}
    elif sas_token:
        conf = {f"fs.azure.account.auth.type.{host}": "SAS", f"fs.azure.sas.fixed.token.{host}": sas_token}
    else:
        raise ConfigError(f"[storage] mode = direct needs [azure] access_key, or a connection_string with "
                          f"AccountKey or SharedAccessSignature, for account '{account}'")
    conf["mapreduce.fileoutputcommitter.marksuccessfuljobs"] = "true"  # the _SUCCESS readers wait for
    return conf


def _spark_written(name: str) -> bool:
    """Entries only Spark writes: partition folders, committer work folders, parquet parts."""
    return "=" in name or name.startswith(LEFTOVER_DIRS[0].rstrip("/")) or name.startswith(LEFTOVER_DIRS[1]) \
        or name.endswith(".parquet")


class AzureDirectStorage(Storage):
    """Hands abfss:// URIs to Spark; the committer publishes, ``_SUCCESS`` marks a committed dataset."""

    def __init__(self, root_uri: str, target: AzureTarget, dfs_suffix: str, hadoop_conf: dict[str, str], *,
                 retry: RetrySettings | None = None, api_version: str | None = None,
                 cleanup_grace_seconds: float = 3600.0):
        self.root = root_uri
        self.target = target
        self.dfs_suffix = dfs_suffix
        self._hadoop_conf = dict(hadoop_conf)
        self.cleanup_grace_seconds = cleanup_grace_seconds
        self._retry = retry
        self._api_version = api_version
        self._access: BlobAccess | None = None

    @classmethod
    def from_config(cls, root_uri: str, config: Config, **options: Any) -> AzureDirectStorage:
        target = resolve_target(root_uri, config.azure)
        if not target.account:
            raise ConfigError(f"storage root '{root_uri}': direct mode needs the storage account name")
        az = config.azure
        suffix = target.location.host_suffix if target.location and target.location.host_suffix else ""
        if not suffix:
            endpoint_suffix = ""
            if az is not None and az.connection_string:
                endpoint_suffix = parse_connection_string(az.connection_string).endpoint_suffix
            suffix = dfs_suffix_for(target.account, az.endpoint if az else "", endpoint_suffix)
        key, sas = direct_credentials(config)
        return cls(root_uri, target, suffix, abfs_hadoop_conf(target.account, suffix, key, sas), **options)

    # -- what Spark gets

    @property
    def access(self) -> BlobAccess:
        """The Blob SDK client for metadata calls, created on first use (URIs need no network)."""
        if self._access is None:
            self._access = BlobAccess(self.target, self._retry, self._api_version)
        return self._access

    def uri(self, rel_path: str) -> str:
        return abfss_uri(self.target.account, self.target.container, self.target.blob_path(rel_path),
                         self.dfs_suffix)

    def hadoop_conf(self) -> dict[str, str]:
        """Hadoop settings for the ABFS connector (contain the key: never log them)."""
        return dict(self._hadoop_conf)

    def spark_conf(self) -> dict[str, str]:
        """The same as ``spark.hadoop.*`` settings, for the SparkSession builder."""
        return {f"spark.hadoop.{k}": v for k, v in self._hadoop_conf.items()}

    def configure_spark(self, spark: Any) -> None:
        """Apply the settings to a running session (when it was built without ``spark_conf()``)."""
        hconf = spark.sparkContext._jsc.hadoopConfiguration()
        for key, value in self._hadoop_conf.items():
            hconf.set(key, value)

    # -- Storage API

    def describe(self) -> str:
        return f"{self.uri('')} (direct; {self.target.where})"

    def check(self) -> None:
        self.access.check()

    def _committed(self, rel_path: str) -> bool:
        return self.access.blob_exists(f"{self.target.blob_path(rel_path)}/{SUCCESS_MARKER}")

    def exists(self, rel_path: str) -> bool:
        """A Spark dataset counts once ``_SUCCESS`` is there; a plain folder (raw files) when not empty."""
        if self._committed(rel_path):
            return True
        prefix = self.target.blob_path(rel_path)
        start = prefix + "/" if prefix else ""
        names = [n[len(start):].strip("/") for n in self.access.walk_names(start)]
        if any(_spark_written(n) for n in names):
            return False  # a dataset whose job has not committed (or was killed): not readable
        return any(not n.startswith(("_", ".")) for n in names)

    def list_dirs(self, rel_path: str) -> list[str]:
        return self.access.list_dirs(self.target.blob_path(rel_path))

    def read_uri(self, rel_path: str, partitions: Sequence[str] | None = None) -> str | None:
        """The dataset's abfss:// URI (Spark prunes partitions from the filter), None if absent."""
        return self.uri(rel_path) if self.exists(rel_path) else None

    def begin_write(self, rel_path: str, run_id: str, mode: str, partition_by: Sequence[str], *,
                    owner: str = "") -> PendingWrite:
        check_write_mode(mode, owner)
        rel = clean_rel_path(rel_path)
        uri = self.uri(rel)
        if owner:
            write_id = f"{_SAFE_ID_RE.sub('-', run_id).strip('-') or 'run'}-{uuid.uuid4().hex[:8]}"
            uri = self.uri(f"{rel}/{OWNED_STAGING}/{write_id}" if rel else f"{OWNED_STAGING}/{write_id}")
        return PendingWrite(rel_path=rel, uri=uri, run_id=run_id, mode=mode, partition_by=tuple(partition_by),
                            owner=owner)

    def _staging(self, pending: PendingWrite) -> str:
        """The blob prefix an owned write was staged under (``<dataset>/_owned/<write_id>``)."""
        return self.target.blob_path(f"{pending.rel_path}/{OWNED_STAGING}/{pending.uri.rsplit('/', 1)[1]}")

    def commit(self, pending: PendingWrite) -> None:
        """Spark's committer already published; verify it finished (``_SUCCESS``)."""
        if pending.owner:
            self._commit_owned(pending)
        elif not self._committed(pending.rel_path):
            raise StorageError(f"Azure storage: write of '{pending.rel_path}' has no {SUCCESS_MARKER} marker: "
                               f"Spark's output committer did not finish ({self.target.where})")
        self.cleanup(pending.rel_path)

    def _commit_owned(self, pending: PendingWrite) -> None:
        """Copy the staged files in under the owner's names, then remove the owner's earlier files from the
        partitions written and replaced (a crash in between leaves both; the next rerun clears them)."""
        staging = self._staging(pending)
        if not self.access.blob_exists(f"{staging}/{SUCCESS_MARKER}"):
            raise StorageError(f"Azure storage: write of '{pending.rel_path}' has no {SUCCESS_MARKER} marker: "
                               f"Spark's output committer did not finish ({self.target.where})")
        dataset = self.target.blob_path(pending.rel_path)
        added: set[str] = set()
        folders = {p.strip("/") for p in pending.replace_partitions}
        for blob in self.access.list_blobs(f"{staging}/", metadata=True):
            rel = blob.name[len(staging) + 1:]
            if _hidden(rel) or _is_folder_marker(blob):
                continue
            dest = f"{dataset}/{owned_name(pending.owner, rel)}"
            self.access.copy(blob.name, dest)
            added.add(dest)
            folders.add(rel.rpartition("/")[0])
        doomed = []
        for folder in folders:
            start = f"{dataset}/{folder}/" if folder else f"{dataset}/"
            doomed += [b.name for b in self.access.list_blobs(start)
                       if "/" not in b.name[len(start):] and b.name not in added
                       and is_owned(pending.owner, b.name[len(start):])]
        if doomed:
            self.access.delete(doomed, workers=4)
        if not self._committed(pending.rel_path):  # the dataset's first write: readers wait for the marker
            self.access.put_bytes(f"{dataset}/{SUCCESS_MARKER}", b"")
        self._remove_staging(pending)
        log.info("committed %s for %s: %d file(s) added, %d earlier one(s) replaced", pending.rel_path,
                 pending.owner, len(added), len(doomed))

    def _remove_staging(self, pending: PendingWrite) -> None:
        names = sorted((b.name for b in self.access.list_blobs(f"{self._staging(pending)}/")),
                       key=lambda n: n.count("/"), reverse=True)
        if names:
            self.access.delete(names, workers=4)

    def abort(self, pending: PendingWrite) -> None:
        """Spark's job abort removes its ``_temporary`` output; an owned write's staged files go here."""
        if pending.owner:
            self._remove_staging(pending)
        log.info("aborted direct write to %s", pending.uri)

    def put_file(self, rel_path: str, local_file: str) -> None:
        self.access.upload_file(self.target.blob_path(rel_path), local_file)

    def cleanup(self, rel_path: str) -> None:
        """Delete leftovers of killed jobs (``_temporary/``, ``.spark-staging-*``, ``_owned/``) past the grace."""
        dataset = self.target.blob_path(rel_path)
        now = datetime.now(UTC)
        doomed = []
        for start in (*LEFTOVER_DIRS, f"{OWNED_STAGING}/"):
            for b in self.access.list_blobs(f"{dataset}/{start}"):
                age = (now - b.last_modified).total_seconds() if b.last_modified else 0.0
                if age >= self.cleanup_grace_seconds:
                    doomed.append(b.name)
        # deepest first, so folder markers of hierarchical-namespace accounts go after their contents
        doomed.sort(key=lambda n: n.count("/"), reverse=True)
        if doomed:
            self.access.delete(doomed, workers=1)
            log.info("cleaned %d committer leftover(s) under %s", len(doomed), dataset)

    def __repr__(self) -> str:
        return f"AzureDirectStorage({scrub(self.describe(), self.target.secrets)})"
