"""Engines pooled and shared per URL, and the schema made sure of once per process."""

from __future__ import annotations

import threading

from loguru import logger
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from ingestion_pipelines.redaction import register_secret

_engines: dict[str, Engine] = {}
_ready: set[str] = set()
_lock = threading.RLock()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# MySQL/MariaDB: utf8mb4 on every connection whatever the server's default (latin1 would fail
# Vietnamese text with error 1366); tables get it from migration 0003 and `tables.py`.
MYSQL_CHARSET = "utf8mb4"


def _charset_args(parsed) -> dict[str, str]:
    if parsed.get_backend_name() in ("mysql", "mariadb"):
        return {"charset": MYSQL_CHARSET}
    return {}


def get_engine(url: str) -> Engine:
    """The process's shared engine for `url` (created on first use, never at import)."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            parsed = make_url(url)
            if parsed.password:
                register_secret(parsed.password)
            if parsed.get_backend_name() == "sqlite":
                engine = create_engine(url, connect_args={"timeout": 30})
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = create_engine(
                    url,
                    pool_pre_ping=True,
                    pool_recycle=1800,
                    pool_size=5,
                    max_overflow=10,
                    connect_args={"connect_timeout": 10, **_charset_args(parsed)},
                )
            _engines[url] = engine
        return engine


def ensure_schema(url: str) -> Engine:
    """The engine for `url`, with every migration applied (once per process and URL)."""
    engine = get_engine(url)
    if url in _ready:
        return engine
    with _lock:
        if url not in _ready:
            from ingestion_pipelines.storage.migrate import upgrade

            upgrade(url)
            _ready.add(url)
    return engine


def dispose_all() -> None:
    """Close every pooled connection (tests, and forked processes)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _ready.clear()


logger.disable("sqlalchemy")
