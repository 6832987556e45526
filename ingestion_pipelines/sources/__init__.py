"""Scheduled sources: one short file per site, turned into Dagster assets by `sources.factory`."""

from ingestion_pipelines.discovery import import_submodules

import_submodules(__name__, skip=("base", "factory", "defs", "testing"))
