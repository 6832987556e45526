"""Websocket feeds: one folder per feed (`feed.py`: the protocol only; `replay.py`: its local
server; `data/`); no engine code here (see `sidecar/`)."""

from ingestion_pipelines.core.discovery import import_submodules

import_submodules(__name__, skip=("base", "defs", "protocol"))
