"""Dagster components of this project: `RestSource` (a REST JSON source declared in
``ingestion_pipelines/defs/<worker_id>/defs.yaml``)."""

from ingestion_pipelines.components.rest_source import RestSource

__all__ = ["RestSource"]
