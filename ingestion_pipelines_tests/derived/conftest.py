"""Fixtures of the derived assets' tests."""

import pytest

from ingestion_pipelines.settings import get_settings
from ingestion_pipelines.storage.engines import ensure_schema


@pytest.fixture(autouse=True)
def _log_database_migrated(isolated_env) -> None:
    """Migrate this test's default database (where a run's execution_log goes) up front.

    Otherwise the execution_log writer migrates it from its own thread during the first run,
    while the next `dg.materialize` creates an ephemeral Dagster instance, which runs Alembic
    too: Alembic's module-level context is not thread-safe, and the two collide (KeyError
    'config' / 'script' in alembic.util.langhelpers).
    """
    ensure_schema(get_settings().database_url)
