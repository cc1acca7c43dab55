"""PostgreSQL for tests: find the server (env TICKFLOW_TEST_PG_DSN, default local), or start a throwaway one.

Each test session works in its own uniquely named database, dropped at the end, so sessions of several
developers (or helpers) on one server never see each other's tables.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql
from psycopg2.extensions import parse_dsn

from engine.config import PostgresConfig
from engine.processes import descendants

DSN_ENV = "TICKFLOW_TEST_PG_DSN"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PgServer:
    """Where a test PostgreSQL server answers (and how to reach its maintenance database)."""

    host: str
    port: int
    user: str
    password: str = field(default="", repr=False)
    maintenance_db: str = "postgres"

    def connect(self, dbname: str | None = None, timeout: int = 3) -> psycopg2.extensions.connection:
        return psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password or None,
                                dbname=dbname or self.maintenance_db, connect_timeout=timeout)

    def config(self, database: str, table: str = "job_tracker") -> PostgresConfig:
        return PostgresConfig(host=self.host, port=self.port, database=database, user=self.user,
                              password=self.password, job_tracker_table_name=table, connect_timeout=3)

    def answers(self) -> bool:
        try:
            self.connect(timeout=2).close()
        except psycopg2.Error:
            return False
        return True


def server_from_dsn(dsn: str) -> PgServer:
    p = parse_dsn(dsn)
    return PgServer(host=p.get("host", "127.0.0.1"), port=int(p.get("port", 5432)),
                    user=p.get("user", "postgres"), password=p.get("password", ""),
                    maintenance_db=p.get("dbname", "postgres"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayServer:
    """initdb + pg_ctl in a temp dir on a free loopback port; run as the `postgres` user when we are root."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tickflow-pg-"))
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *cmd: str) -> None:
        full = ["runuser", "-u", "postgres", "--", *cmd] if self._as_postgres else list(cmd)
        done = subprocess.run(full, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({done.returncode}): {done.stderr.strip()[-500:]}")

    def start(self) -> PgServer:
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        data = self.dir / "data"
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(data), "-l", str(self.dir / "log"), "-o", opts, "-w", "start")
        server = PgServer("127.0.0.1", self.port, "postgres")
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not server.answers():
            if time.monotonic() > deadline:
                raise RuntimeError(f"throwaway PostgreSQL on port {self.port} did not answer")
            time.sleep(0.2)
        return server

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def postmaster_pid(self) -> int:
        """The first line of postmaster.pid."""
        return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])

    @contextlib.contextmanager
    def frozen(self) -> Iterator[list[int]]:
        """The whole server stopped with SIGSTOP (what a hung host looks like: its kernel still accepts
        connections and acknowledges packets, but nothing answers), continued with SIGCONT at the end."""
        stopped: list[int] = []
        try:
            postmaster = self.postmaster_pid()
            os.kill(postmaster, signal.SIGSTOP)  # first: a stopped postmaster starts no new backend
            stopped.append(postmaster)
            for pid in sorted(descendants(postmaster)):
                with contextlib.suppress(ProcessLookupError):  # a backend that was just ending
                    os.kill(pid, signal.SIGSTOP)
                    stopped.append(pid)
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not all(process_state(pid) in "TtZX" for pid in stopped):  # the kernel stops them shortly after
                if time.monotonic() > deadline:
                    raise RuntimeError(f"throwaway PostgreSQL on port {self.port} did not stop (SIGSTOP)")
                time.sleep(0.01)
            yield stopped
        finally:
            for pid in reversed(stopped):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)


def process_state(pid: int) -> str:
    """R, S, T (stopped)...; X when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "X"


def start_or_skip(srv: Any) -> PgServer:
    """Start a throwaway server (``ThrowawayServer`` or a subclass); where none can start here, the test is
    skipped, but never in CI, where it fails."""
    try:
        return srv.start()
    except (RuntimeError, FileNotFoundError) as exc:
        srv.stop()
        message = f"no throwaway PostgreSQL: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def find_server() -> tuple[PgServer, ThrowawayServer | None]:
    """The configured server when it answers, else a throwaway one (stop it at the end)."""
    server = server_from_dsn(os.environ.get(DSN_ENV, DEFAULT_DSN))
    if server.answers():
        return server, None
    if not shutil.which("initdb") or not shutil.which("pg_ctl"):
        raise RuntimeError(f"no PostgreSQL answers at {server.host}:{server.port} and initdb/pg_ctl are missing")
    throwaway = ThrowawayServer()
    return throwaway.start(), throwaway


def create_database(server: PgServer) -> str:
    name = f"tickflow_test_{uuid.uuid4().hex[:12]}"
    conn = server.connect()
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()
    return name


def drop_database(server: PgServer, name: str) -> None:
    conn = server.connect()
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        conn.close()
