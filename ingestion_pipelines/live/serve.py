"""Run the live relay with uvicorn: `ingest live [--host H] [--port P]`."""

from __future__ import annotations

import logging
import sys

from ingestion_pipelines.core.redaction import redact_url
from ingestion_pipelines.core.settings import get_settings
from ingestion_pipelines.live.hub import NO_REDIS


class _DropNoise(logging.Filter):
    """A dropped client's stream ends before its response could (its socket was full): that is
    the relay's decision, logged by the hub, not an application error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


def serve(
    host: str | None = None,
    port: int | None = None,
    heartbeat_s: float | None = None,
    database_url: str | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM on `host:port` (default INGEST_LIVE_HOST / INGEST_LIVE_PORT)."""
    import uvicorn

    from ingestion_pipelines.live.app import HEARTBEAT_S, create_app
    from ingestion_pipelines.live.auth import LiveAuth

    settings = get_settings()
    host = host or settings.live_host
    port = port or settings.live_port
    try:
        auth = LiveAuth.from_settings()
    except ValueError as exc:
        print(f"ingest live: {exc}", file=sys.stderr, flush=True)
        return 2
    app = create_app(
        settings.redis_url,
        heartbeat_s=heartbeat_s or HEARTBEAT_S,
        bars_database_url=database_url,
        auth=auth,
        flush_s=settings.live_flush_ms / 1000,
    )
    source = f"Redis at {redact_url(settings.redis_url)}" if settings.redis_url else None
    print(
        f"ingest live: http://{host}:{port}/ (relaying ticks:*, bars:*, progress:* "
        f"from {source or 'nowhere'})",
        file=sys.stderr,
        flush=True,
    )
    if source is None:
        print(f"ingest live: {NO_REDIS}", file=sys.stderr, flush=True)
    access = (
        "a token is required (INGEST_LIVE_JWT_SECRET is set; `ingest live token` mints one)"
        if auth.secret
        else "open to anyone who can reach it (set INGEST_LIVE_JWT_SECRET to require tokens)"
    )
    print(f"ingest live: {access}", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,  # open streams must not hold up Ctrl-C
    )
    logging.getLogger("uvicorn.error").addFilter(_DropNoise())
    uvicorn.Server(config).run()
    return 0
