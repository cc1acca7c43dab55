"""Fixtures: the same tests run against embedded SQLite and a real PostgreSQL (its own database per session)."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.config import Config, TrackerConfig
from engine.tracker import Tracker, open_tracker
from tests.pg import PgServer, create_database, drop_database, find_server

BACKENDS = ("sqlite", "postgres")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server, throwaway = find_server()
    try:
        yield server
    finally:
        if throwaway is not None:
            throwaway.stop()


@pytest.fixture(scope="session")
def pg_database(pg_server: PgServer) -> Iterator[str]:
    name = create_database(pg_server)
    try:
        yield name
    finally:
        drop_database(pg_server, name)


@dataclass
class Backend:
    """One tracker backend with a fresh table (and file) for one test."""

    kind: str
    tmp: Path
    server: PgServer | None = None
    database: str | None = None
    table: str = field(default_factory=lambda: f"jt_{uuid.uuid4().hex[:10]}")
    _open: list[Tracker] = field(default_factory=list)

    @property
    def sqlite_file(self) -> Path:
        return self.tmp / "state" / "tracker.sqlite"

    def config(self, table: str | None = None, lease_seconds: int = 180) -> Config:
        table = self.table if table is None else table
        if self.kind == "sqlite":
            return Config(tracker=TrackerConfig(sqlite_path="state/tracker.sqlite", table=table,
                                                lease_seconds=lease_seconds), base_dir=self.tmp)
        assert self.server is not None and self.database is not None
        return Config(postgres=self.server.config(self.database, table),
                      tracker=TrackerConfig(lease_seconds=lease_seconds))

    def tracker(self, table: str | None = None) -> Tracker:
        t = open_tracker(self.config(table))
        self._open.append(t)
        return t

    def ini(self, lease_seconds: int = 180) -> Path:
        """A config file for subprocesses (the driver script)."""
        path = self.tmp / f"tickflow-{self.kind}.ini"
        if self.kind == "sqlite":
            text = (f"[tracker]\nsqlite_path = {self.sqlite_file}\ntable = {self.table}\n"
                    f"lease_seconds = {lease_seconds}\n")
        else:
            assert self.server is not None
            text = (f"[postgres]\nhost = {self.server.host}\nport = {self.server.port}\n"
                    f"database = {self.database}\nuser = {self.server.user}\n"
                    f"password = {self.server.password}\njob_tracker_table_name = {self.table}\n"
                    f"[tracker]\nlease_seconds = {lease_seconds}\n")
        path.write_text(text)
        return path

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Raw SQL on the backend's database (``?`` placeholders; translated for psycopg2)."""
        if self.kind == "sqlite":
            self.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.sqlite_file, isolation_level=None)
            try:
                return conn.execute(statement, params).fetchall()
            finally:
                conn.close()
        assert self.server is not None
        conn = self.server.connect(self.database)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement.replace("?", "%s"), tuple(params))
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def close(self) -> None:
        for t in self._open:
            t.close()


@pytest.fixture
def fresh_pg_database(pg_server: PgServer) -> Iterator[str]:
    """A database of its own, so "no job_tracker table" really means nothing created it."""
    name = create_database(pg_server)
    try:
        yield name
    finally:
        drop_database(pg_server, name)


def pg_table_exists(server: PgServer, database: str, table: str = "job_tracker") -> bool:
    conn = server.connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
            return bool(cur.fetchone()[0])
    finally:
        conn.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "postgres":
        server = request.getfixturevalue("pg_server")
        b = Backend("postgres", tmp_path, server, request.getfixturevalue("pg_database"))
    else:
        b = Backend("sqlite", tmp_path)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def clean_env() -> dict[str, str]:
    """Environment for subprocesses without TICKFLOW_* overrides from the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKFLOW_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[3])
    return env
