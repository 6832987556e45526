"""The engine for a URL with its schema made sure of, once per process (`ensure_schema`); the
pool itself is `storage.pool` (get_engine, dispose_all), re-exported here for callers."""

from __future__ import annotations

from sqlalchemy import Engine

from ingestion_pipelines.storage.migrate import upgrade
from ingestion_pipelines.storage.pool import (  # noqa: F401 - the storage API callers use
    MYSQL_CHARSET,
    dispose_all,
    get_engine,
    migrated_urls,
    pool_lock,
)


def ensure_schema(url: str) -> Engine:
    """The engine for `url`, with every migration applied (once per process and URL)."""
    engine = get_engine(url)
    if url in migrated_urls:
        return engine
    with pool_lock:
        if url not in migrated_urls:
            upgrade(url)
            migrated_urls.add(url)
    return engine
