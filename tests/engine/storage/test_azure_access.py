"""How both Azure backends reach their container (engine.storage.azure_access): the root and [azure] resolved to
an account, container, endpoint and credential; the SDK's retry policy; folder markers."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from engine.config import AzureConfig
from engine.errors import ConfigError, StorageError
from engine.storage.azure_access import RetrySettings, is_folder_marker, parallel, resolve_target
from engine.storage.azure_blob import AzureBlobStorage
from tests.azurite import ACCOUNT

# -- the root and [azure] resolved, no network ------------------------------------------------------------------

def test_an_account_and_key_resolve_to_the_public_endpoint_and_a_shared_key():
    target = resolve_target("az://market/wh/", AzureConfig(storage_account="acct01", access_key="k3y=="))
    assert (target.account, target.container, target.prefix) == ("acct01", "market", "wh")
    assert target.endpoint == "https://acct01.blob.core.windows.net"
    assert target.credential == {"account_name": "acct01", "account_key": "k3y=="} and target.secrets == ("k3y==",)
    assert "k3y==" not in repr(target)
    assert target.blob_path("trade/") == "wh/trade" and target.blob_path("") == "wh"


def test_a_sas_connection_string_names_the_account_through_its_endpoint():
    cs = "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;SharedAccessSignature=sv=1&sig=abc"
    target = resolve_target("az://market", AzureConfig(connection_string=cs))
    assert (target.account, target.endpoint, target.credential) == (
        "devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1", "sv=1&sig=abc")
    assert "sv=1&sig=abc" in target.secrets and "sig=abc" not in repr(target)
    assert target.blob_path("x") == "x"  # no prefix


def test_the_default_container_and_an_anonymous_endpoint():
    target = resolve_target("az:///wh", AzureConfig(storage_account="acct01", container="dflt",
                                                    endpoint="http://127.0.0.1:1/acct01/"))
    assert (target.container, target.endpoint, target.credential) == ("dflt", "http://127.0.0.1:1/acct01", None)


@pytest.mark.parametrize("azure,words", [
    (None, "storage root 'az://market/wh' is in Azure but the config has no [azure] section"),
    (AzureConfig(container="c01"), "storage root 'az://market/wh': [azure] storage_account is not set"),
    (AzureConfig(storage_account="acct01", endpoint="acct01.blob.core.windows.net"),
     "[azure] endpoint 'acct01.blob.core.windows.net' must start with http:// or https://"),
])
def test_an_unusable_azure_section_is_a_config_error(azure, words):
    with pytest.raises(ConfigError) as info:
        resolve_target("az://market/wh", azure)
    assert str(info.value).startswith(words)


def test_folder_markers_are_not_data():
    def blob(name: str, size: int, **metadata: str) -> SimpleNamespace:
        return SimpleNamespace(name=name, size=size, metadata=metadata)

    assert is_folder_marker(blob("wh/trade/", 0)) and is_folder_marker(blob("wh/trade", 0, hdi_isfolder="True"))
    assert not is_folder_marker(blob("wh/trade/part-0", 0)) and not is_folder_marker(blob("wh/x", 5, hdi_isfolder="x"))


def test_parallel_keeps_the_order_of_its_items():
    assert parallel(lambda n: n * n, list(range(20)), workers=4) == [n * n for n in range(20)]
    assert parallel(lambda n: n, [], workers=4) == [] and parallel(str, [1, 2], workers=1) == ["1", "2"]


# -- transient failures are retried by the SDK's configured retry policy: a proxy in front of Azurite answers 503 to
# the first requests, then forwards --------------------------------------------------------------------------------


QUICK = dict(initial_backoff=0.01, increment_base=0.01, jitter=0.0, connection_timeout=2)


class FlakyProxy:
    """Fails the first ``failures`` requests with 503 Server Busy, forwards the rest to ``upstream``."""

    def __init__(self, upstream: str, failures: int):
        self.upstream = urlsplit(upstream)
        self.failures = failures
        self.seen = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                with proxy.lock:
                    proxy.seen += 1
                    fail = proxy.seen <= proxy.failures
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if fail:
                    self.send_response(503, "Server Busy")
                    self.send_header("x-ms-error-code", "ServerBusy")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{ACCOUNT}"


@pytest.fixture
def flaky(azurite) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(azurite.endpoint, failures=2)
    proxy.thread.start()
    yield proxy
    proxy.server.shutdown()
    proxy.server.server_close()


def test_503s_are_retried_by_the_sdk_policy(azure_config, container, flaky) -> None:
    storage = AzureBlobStorage.from_config(f"az://{container}/wh", azure_config(container, endpoint=flaky.endpoint),
                                           retry=RetrySettings(total=3, **QUICK))
    storage.check()
    assert flaky.seen == 3  # two 503s, then the forwarded request succeeded


def test_retries_exhausted_give_one_line(azure_config, container, flaky) -> None:
    storage = AzureBlobStorage.from_config(f"az://{container}/wh", azure_config(container, endpoint=flaky.endpoint),
                                           retry=RetrySettings(total=1, **QUICK))
    with pytest.raises(StorageError) as info:
        storage.check()
    assert "HTTP 503 ServerBusy" in str(info.value) and flaky.seen == 2
