"""Engines pooled and shared per URL (created on first use, never at import)."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from ingestion_pipelines.core.redaction import register_secret

_engines: dict[str, Engine] = {}
migrated_urls: set[str] = set()  # URLs migrated by this process (storage.engines.ensure_schema)
pool_lock = threading.RLock()


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
    with pool_lock:
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


def dispose_all() -> None:
    """Close every pooled connection (tests, and forked processes)."""
    with pool_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        migrated_urls.clear()
