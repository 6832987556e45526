"""Fixtures shared by every test: an isolated environment and the real-server test bed.

Servers (see `testbed/`) start once per session, and only when a test asks for them;
each test then gets an empty database (created and dropped around it) or a flushed Redis.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from ingestion_pipelines_tests.testbed.base import Server
from ingestion_pipelines_tests.testbed.mariadb import MariaDBServer
from ingestion_pipelines_tests.testbed.postgres import PostgresServer
from ingestion_pipelines_tests.testbed.redis import RedisServer

_STARTED: list[Server] = []
S = TypeVar("S", bound=Server)


def _session_server(server: S) -> Iterator[S]:
    try:
        server.start()
        _STARTED.append(server)
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    """A MariaDB server for the whole session (user `ingest`/`ingest` over TCP)."""
    yield from _session_server(MariaDBServer())


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session (user `ingest`/`ingest` over TCP)."""
    yield from _session_server(PostgresServer())


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A Redis server for the whole session (no persistence)."""
    yield from _session_server(RedisServer())


def _database_name(request: pytest.FixtureRequest) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    return f"t_{slug}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def mariadb_url(mariadb_server: MariaDBServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a new, empty MariaDB database for this test; dropped afterwards."""
    mariadb_server.start()  # no-op unless an earlier test left it down
    name = mariadb_server.create_database(_database_name(request))
    yield mariadb_server.url(name)
    mariadb_server.start()  # the test may have killed it
    mariadb_server.drop_database(name)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a new, empty PostgreSQL database for this test; dropped afterwards."""
    postgres_server.start()
    name = postgres_server.create_database(_database_name(request))
    yield postgres_server.url(name)
    postgres_server.start()
    postgres_server.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file in this test's tmp_path (created on first connection)."""
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["sqlite", "mariadb", "postgres"], ids=["sqlite", "mariadb", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The test runs three times, on an empty SQLite, MariaDB and PostgreSQL database."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL (db 0) of the session Redis, flushed (all databases) before the test."""
    redis_server.start()
    redis_server.flushall()
    return redis_server.url()


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """No `INGEST_*` variable from the caller; local data and DAGSTER_HOME in fresh folders.

    Returns the new INGEST_LOCAL_DIR (`<basetemp>/ingest_local<N>`); DAGSTER_HOME is
    `<basetemp>/dagster_home<N>`. Both exist and are empty; the test's own tmp_path is left
    untouched.
    """
    for key in list(os.environ):
        if key.startswith("INGEST_"):
            monkeypatch.delenv(key)
    local = tmp_path_factory.mktemp("ingest_local")
    dagster_home = tmp_path_factory.mktemp("dagster_home")
    monkeypatch.setenv("INGEST_LOCAL_DIR", str(local))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    return local


@pytest.fixture(autouse=True)
def _stop_execution_log_writer() -> Iterator[None]:
    """A writer started by a test (often inside a Dagster run) writes to that test's database:
    stop it with the test, so the next test starts its own."""
    yield
    from ingestion_pipelines.storage import logs

    if logs._writer is not None:
        logs.shutdown_logging(timeout_s=1)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for server in _STARTED:
        if server.startup_seconds is not None:
            terminalreporter.write_line(
                f"test bed: {server.kind} on 127.0.0.1:{server.port} started in "
                f"{server.startup_seconds:.2f} s ({server.starts} start(s) in this session)"
            )
