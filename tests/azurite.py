"""Start and stop a real Azurite blob service (npm package ``azurite``) on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

# Azurite's fixed development account; public, documented by Microsoft, not a secret.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteError(RuntimeError):
    """Azurite is missing or did not start."""


@dataclass
class Azurite:
    """A running Azurite blob service."""

    port: int
    process: subprocess.Popen
    log_path: Path
    host: str = "127.0.0.1"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint={self.endpoint};")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def azurite_binary(repo_root: Path) -> Path | None:
    path = repo_root / "node_modules" / ".bin" / "azurite-blob"
    return path if path.exists() else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_azurite(repo_root: Path, workdir: Path, timeout: float = 60.0) -> Azurite:
    """Launch azurite-blob in memory and return once it accepts connections (bounded wait)."""
    binary = azurite_binary(repo_root)
    if binary is None:
        raise AzuriteError(f"azurite is not installed: run `npm install` in {repo_root}")
    workdir.mkdir(parents=True, exist_ok=True)
    last = ""
    for _ in range(3):  # the free port may be taken between probing and binding: try another
        port = free_port()
        log_path = workdir / f"azurite-{port}.log"
        with open(log_path, "wb") as log_fh:
            proc = subprocess.Popen(
                [str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port),
                 "--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry", "--loose", "--silent"],
                stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir,
                env={**os.environ, "NODE_NO_WARNINGS": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _answers(port):
                return Azurite(port=port, process=proc, log_path=log_path)
            try:
                proc.wait(timeout=0.1)  # doubles as the pause between probes
                break  # exited: port clash or broken install
            except subprocess.TimeoutExpired:
                continue
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        last = log_path.read_text(errors="replace")[-2000:]
    raise AzuriteError(f"azurite did not start: {last}")
