"""The database resource: engines for control and data tables, schema ensured on first use."""

from __future__ import annotations

import dagster as dg
from sqlalchemy import Engine

from ingestion_pipelines.core.settings import get_settings
from ingestion_pipelines.storage.engines import ensure_schema


class DatabaseResource(dg.ConfigurableResource):
    """`url` is the control database (normally `EnvVar("INGEST_DATABASE_URL")`; empty: the default).

    A worker's data tables may live elsewhere (`database_url` in the config chain):
    `data_engine(settings.database_url)` gives that engine, migrated.
    """

    url: str | None = None

    def control_url(self) -> str:
        return self.url or get_settings().database_url

    def engine(self) -> Engine:
        return ensure_schema(self.control_url())

    def data_engine(self, database_url: str | None = None) -> Engine:
        return ensure_schema(database_url or self.control_url())
