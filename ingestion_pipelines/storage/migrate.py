"""Versioned migrations (Alembic), run by `ingest db upgrade` and by any process needing the schema."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from loguru import logger
from sqlalchemy import text

from ingestion_pipelines.core.redaction import redact_url
from ingestion_pipelines.storage.migration_ops import bound_to
from ingestion_pipelines.storage.pool import get_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_NAME = "ingestion_pipelines_migrations"


def script_config(script_location: Path | None = None) -> Config:
    """Alembic's configuration for the migrations at `script_location` (default: the package's
    `migrations` folder; tests point it at a copy)."""
    config = Config()
    config.set_main_option("script_location", str(script_location or MIGRATIONS_DIR))
    # revision files are named `0009_<slug>.py` (`storage.revision` picks the number)
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return config


def head_revision(script_location: Path | None = None) -> str:
    """The newest migration revision."""
    return ScriptDirectory.from_config(script_config(script_location)).get_current_head()


def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at (None: never migrated)."""
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _run_scripts(conn, revisions) -> None:
    """Run the migration steps `revisions(current_heads, context)` picks, on `conn`.

    Not through `alembic.command` and env.py: they use Alembic's module-global `context` and
    `op`, which Dagster's own storages also install from other threads of the same process
    (see `migration_ops`).
    """
    # Imported here: tables imports engines, which imports this module.
    from ingestion_pipelines.storage.tables import full_metadata

    context = MigrationContext.configure(
        connection=conn,
        opts={
            "fn": revisions,
            "target_metadata": full_metadata(),
            "render_as_batch": conn.dialect.name == "sqlite",
            "compare_type": True,
        },
    )
    with bound_to(context), context.begin_transaction():
        context.run_migrations()


def downgrade(url: str, revision: str, *, script_location: Path | None = None) -> str:
    """Undo migrations of the database at `url` down to `revision` (tests and operators)."""
    script = ScriptDirectory.from_config(script_config(script_location))
    with get_engine(url).connect() as conn:
        _run_scripts(conn, lambda current, _context: script._downgrade_revs(revision, current))
        conn.commit()
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str, revision: str = "head", *, script_location: Path | None = None) -> str:
    """Apply every pending migration to the database at `url`; returns the revision reached.

    Concurrent processes serialise on a database lock (MySQL GET_LOCK, PostgreSQL advisory lock).
    """
    engine = get_engine(url)
    config = script_config(script_location)
    with engine.connect() as conn:
        dialect = conn.dialect.name
        if dialect in ("mysql", "mariadb"):
            conn.execute(text("SELECT GET_LOCK(:n, 60)"), {"n": _LOCK_NAME})
        elif dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(hashtext(:n))"), {"n": _LOCK_NAME})
        conn.commit()
        try:
            before = MigrationContext.configure(conn).get_current_revision()
            script = ScriptDirectory.from_config(config)
            _run_scripts(conn, lambda current, _context: script._upgrade_revs(revision, current))
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
