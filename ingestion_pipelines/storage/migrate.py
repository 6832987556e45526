"""Versioned migrations (Alembic), run by `ingest db upgrade` and by any process needing the schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from loguru import logger
from sqlalchemy import text

from ingestion_pipelines.redaction import redact_url
from ingestion_pipelines.storage.pool import get_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_NAME = "ingestion_pipelines_migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest migration revision."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at (None: never migrated)."""
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str, revision: str = "head") -> str:
    """Apply every pending migration to the database at `url`; returns the revision reached.

    Concurrent processes serialise on a database lock (MySQL GET_LOCK, PostgreSQL advisory lock).
    """
    engine = get_engine(url)
    config = _config()
    with engine.connect() as conn:
        dialect = conn.dialect.name
        if dialect in ("mysql", "mariadb"):
            conn.execute(text("SELECT GET_LOCK(:n, 60)"), {"n": _LOCK_NAME})
        elif dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(hashtext(:n))"), {"n": _LOCK_NAME})
        conn.commit()
        try:
            before = MigrationContext.configure(conn).get_current_revision()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            conn.commit()
            after = MigrationContext.configure(conn).get_current_revision()
        finally:
            if dialect in ("mysql", "mariadb"):
                conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": _LOCK_NAME})
            elif dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(hashtext(:n))"), {"n": _LOCK_NAME})
            conn.commit()
    if before != after:
        logger.info("database {} migrated from {} to {}", redact_url(url), before, after)
    return after
