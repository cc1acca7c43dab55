"""Turns azure-storage-blob failures into one-line StorageErrors that never carry a secret.

SDK exceptions can embed request URLs (with SAS signatures), response bodies and headers; we never pass
their text through unfiltered: the message is built from the status, the service error code and a scrubbed
short detail, and the original exception is not chained (a logged traceback would print it).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from engine.config import AzureConfig
from engine.errors import StorageError
from engine.storage.azure_uri import parse_connection_string

log = logging.getLogger(__name__)

_URL_QUERY_RE = re.compile(r"(https?://[^\s?'\"]+)\?[^\s'\"]*")
_SIG_RE = re.compile(r"(sig|AccountKey|SharedAccessSignature)=[^&;\s'\"]+", re.IGNORECASE)
_MAX_DETAIL = 160


@dataclass(frozen=True)
class AzureWhere:
    """What a message names: the account, container and endpoint (never credentials)."""

    account: str
    container: str
    endpoint: str

    def __str__(self) -> str:
        return f"account={self.account or '?'} container={self.container or '?'} endpoint={self.endpoint}"


def azure_secrets(az: AzureConfig | None) -> list[str]:
    """Every secret string derivable from ``[azure]``, including the key inside a connection string."""
    if az is None:
        return []
    out = [v for v in (az.access_key, az.connection_string) if v]
    if az.connection_string:
        try:
            parts = parse_connection_string(az.connection_string)
        except Exception:  # noqa: BLE001 - a malformed string is reported elsewhere; mask what we have
            parts = None
        if parts is not None:
            out += [v for v in (parts.account_key, parts.sas_token) if v]
    return out


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Mask secrets, URL query strings (SAS tokens) and key=value credentials in ``text``."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _URL_QUERY_RE.sub(r"\1?***", text)
    return _SIG_RE.sub(r"\1=***", text)


def _short_detail(exc: BaseException, secrets: Iterable[str]) -> str:
    if isinstance(exc, HttpResponseError):
        text = exc.reason or ""
    else:
        # azure-core wraps urllib3/requests errors: the innermost message is the useful one
        inner: BaseException = exc
        while getattr(inner, "inner_exception", None) is not None:
            inner = inner.inner_exception  # type: ignore[assignment]
        text = str(inner) or type(inner).__name__
        errno = re.search(r"\[Errno -?\d+\][^'\")]*", text)
        if errno:
            text = errno.group(0)
        elif "timed out" in text.lower():
            text = "timed out"
    line = " ".join(scrub(text, secrets).split())
    return line[:_MAX_DETAIL]


def describe_failure(exc: BaseException, action: str, where: AzureWhere, secrets: Iterable[str]) -> str:
    """One line: what we tried, why it failed, where."""
    secrets = list(secrets)
    code = getattr(exc, "error_code", None) or ""
    code = str(getattr(code, "value", code))  # the SDK gives a StorageErrorCode enum or a plain string
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ClientAuthenticationError) and status is None:
        why = "cannot sign requests: the access key is not a valid base64 account key"
    elif code == "AuthorizationPermissionMismatch":
        why = (f"permission missing (HTTP {status} {code}): the credential does not allow this; a SAS needs "
               f"read, write, delete and list on the container (read and list for a raw root)")
    elif isinstance(exc, ClientAuthenticationError) or code in ("AuthenticationFailed", "AuthorizationFailure"):
        why = (f"access denied (HTTP {status} {code or 'Forbidden'}): wrong access key or connection string "
               f"for this account, or missing permission")
    elif isinstance(exc, ResourceNotFoundError) and code == "ContainerNotFound":
        why = f"container '{where.container}' does not exist"
    elif isinstance(exc, ResourceNotFoundError) and code in ("ResourceNotFound", "AccountNotFound", ""):
        why = f"not found (HTTP {status} {code or 'NotFound'}): unknown account or wrong endpoint"
    elif isinstance(exc, ServiceRequestError):
        why = (f"cannot reach the endpoint ({_short_detail(exc, secrets)}): unknown account, "
               f"wrong endpoint or network down")
    elif isinstance(exc, ServiceResponseError):
        why = f"the endpoint stopped answering ({_short_detail(exc, secrets)})"
    elif isinstance(exc, HttpResponseError):
        why = f"HTTP {status} {code}: {_short_detail(exc, secrets)}".rstrip(": ")
    elif isinstance(exc, AzureError):
        why = f"{type(exc).__name__}: {_short_detail(exc, secrets)}"
    else:
        why = f"{type(exc).__name__}: {_short_detail(exc, secrets)}"
    return scrub(f"Azure storage: {action} failed: {why} ({where})", secrets)


@contextlib.contextmanager
def translate_errors(action: str, where: AzureWhere, secrets: Iterable[str]) -> Iterator[None]:
    """Re-raise SDK (and signing) failures inside the block as a scrubbed one-line StorageError."""
    try:
        yield
    except StorageError:
        raise
    except (AzureError, ValueError) as exc:
        message = describe_failure(exc, action, where, secrets)
        log.debug("%s [%s]", message, type(exc).__name__)
        raise StorageError(message) from None
