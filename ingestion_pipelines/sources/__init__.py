"""Scheduled sources: the sources declared in YAML (``ingestion_pipelines/defs/<worker_id>/``,
made by `sources.declared`) and one folder per Python source family (its sources, replay,
expected values and recordings), turned into Dagster assets by `sources.factory`; discovery
finds both."""

from ingestion_pipelines.core.discovery import import_submodules
from ingestion_pipelines.sources.declared import load_declared_sources

import_submodules(
    __name__,
    skip=("base", "factory", "defs", "testing", "declared", "paginators", "declared_replay"),
)
load_declared_sources()
