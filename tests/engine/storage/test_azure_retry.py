"""Transient failures are retried by the SDK's configured retry policy: a proxy in front of Azurite
answers 503 to the first requests, then forwards."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from engine.errors import StorageError
from engine.storage.azure_access import RetrySettings
from engine.storage.azure_blob import AzureBlobStorage
from tests.azurite import ACCOUNT

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
