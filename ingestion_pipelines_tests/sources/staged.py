"""A declaration staged in ``staging/<worker_id>/defs.yaml`` while the Python worker still holds
its worker id: made into its `DeclaredSource` class outside the catalogue, under another worker id
(``<worker_id>_staged``), so the two versions can be run side by side (tests, benchmarks)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
STAGING = ROOT / "staging"


def staged_class(worker_id: str):
    """The staged declaration of `worker_id` as a source class, not in the worker catalogue."""
    from ingestion_pipelines.config import workers
    from ingestion_pipelines.sources import declared
    from ingestion_pipelines.storage.declared import Declaration

    folder = STAGING / worker_id
    attributes = yaml.safe_load((folder / "defs.yaml").read_text(encoding="utf-8"))["attributes"]
    attributes = {**attributes, "worker_id": f"{worker_id}_staged"}
    made, registry = dict(declared._MADE), dict(workers.catalogue())
    try:
        return declared.source_class(Declaration(folder, attributes))
    finally:
        declared._MADE.clear()
        declared._MADE.update(made)
        workers._registry.clear()
        workers._registry.update(registry)
