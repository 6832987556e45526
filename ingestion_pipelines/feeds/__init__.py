"""Websocket feeds: one short file per protocol (no engine code here; see `sidecar/`)."""

from ingestion_pipelines.discovery import import_submodules

import_submodules(__name__, skip=("base", "defs", "protocol"))
