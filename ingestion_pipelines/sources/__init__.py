"""Scheduled sources: one folder per source family (its sources, replay, expected values and
recordings), turned into Dagster assets by `sources.factory`; discovery finds the folders."""

from ingestion_pipelines.discovery import import_submodules

import_submodules(__name__, skip=("base", "factory", "defs", "testing"))
