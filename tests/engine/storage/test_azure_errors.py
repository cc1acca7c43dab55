"""Unit tests of the SDK-error -> one-line StorageError mapping (real failures: test_azure_blob.py)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)

from engine.config import AzureConfig
from engine.errors import StorageError
from engine.storage.azure_errors import AzureWhere, azure_secrets, describe_failure, scrub, translate_errors

WHERE = AzureWhere("acct", "market", "https://acct.blob.core.windows.net")
KEY = "c2VjcmV0LWtleS1ub3QtdG8tbGVhaw=="


def _http(cls: type[HttpResponseError], status: int, code: str, reason: str = "") -> HttpResponseError:
    exc = cls(message=f"{reason} {KEY}")
    exc.status_code, exc.error_code, exc.reason = status, code, reason
    return exc


def test_scrub_masks_secrets_sas_and_connection_string_fields() -> None:
    text = (f"GET https://acct.blob.core.windows.net/c/b?sv=2021&sig=abc%2Fdef failed; key {KEY}; "
            f"AccountKey=other==;SharedAccessSignature=sv=1&sig=x")
    out = scrub(text, [KEY])
    assert KEY not in out and "abc%2Fdef" not in out and "other==" not in out and "sig=x" not in out
    assert "https://acct.blob.core.windows.net/c/b?***" in out


def test_azure_secrets_include_the_key_inside_a_connection_string() -> None:
    az = AzureConfig(connection_string=f"AccountName=acct;AccountKey={KEY};EndpointSuffix=core.windows.net")
    assert KEY in azure_secrets(az)
    assert azure_secrets(None) == []


@pytest.mark.parametrize(("exc", "expected"), [
    (_http(ClientAuthenticationError, 403, "AuthenticationFailed"), "access denied (HTTP 403 AuthenticationFailed)"),
    (_http(ResourceNotFoundError, 404, "ContainerNotFound"), "container 'market' does not exist"),
    (_http(ResourceNotFoundError, 404, "ResourceNotFound"), "unknown account or wrong endpoint"),
    (_http(HttpResponseError, 503, "ServerBusy", "Service Unavailable"), "HTTP 503 ServerBusy: Service Unavailable"),
    (ServiceRequestError(f"<conn>: Failed to establish a new connection: [Errno 111] Connection refused {KEY}"),
     "cannot reach the endpoint ([Errno 111] Connection refused"),
    (ClientAuthenticationError("Incorrect padding"), "not a valid base64 account key"),
])
def test_describe_failure(exc: Exception, expected: str) -> None:
    line = describe_failure(exc, "check the container", WHERE, [KEY])
    assert expected in line
    assert line.startswith("Azure storage: check the container failed: ")
    assert line.endswith("(account=acct container=market endpoint=https://acct.blob.core.windows.net)")
    assert "\n" not in line and KEY not in line


def test_translate_errors_raises_one_line_without_chaining() -> None:
    with pytest.raises(StorageError) as info, translate_errors("list 'x'", WHERE, [KEY]):
        raise _http(ClientAuthenticationError, 403, "AuthenticationFailed", f"bad {KEY}")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert KEY not in str(info.value) and info.value.exit_code == 2


def test_translate_errors_lets_storage_errors_and_other_bugs_through() -> None:
    with pytest.raises(StorageError, match="mine"), translate_errors("x", WHERE, []):
        raise StorageError("mine")
    with pytest.raises(KeyError), translate_errors("x", WHERE, []):
        raise KeyError("bug")
