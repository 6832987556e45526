"""Assets computed from our own tables."""

from ingestion_pipelines.core.discovery import import_submodules

import_submodules(__name__, skip=("defs",))
