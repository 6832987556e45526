"""Process-wide settings: the `INGEST_*` variables of the contract, read in one place.

Nothing here is read at import time; call `get_settings()` when a value is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def local_data_dir() -> Path:
    """The project's local data folder (git-ignored): SQLite files, spool, Dagster home."""
    path = Path(os.environ.get("INGEST_LOCAL_DIR") or PROJECT_ROOT / ".local")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _default_database_url() -> str:
    return f"sqlite:///{local_data_dir() / 'ingest.db'}"


class Settings(BaseSettings):
    """Settings shared by every process (webserver, daemon, runs, sidecar, CLI)."""

    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore")

    database_url: str = Field(default_factory=_default_database_url)
    redis_url: str | None = None
    dagster_url: str = "http://127.0.0.1:3000"
    # the sidecar's /healthz, /readyz and /metrics (port 0: not served)
    sidecar_http_host: str = "127.0.0.1"
    sidecar_http_port: int = 8791
    live_host: str = "127.0.0.1"  # where `ingest live` listens (INGEST_LIVE_HOST)
    live_port: int = 8790  # INGEST_LIVE_PORT
    # `ingest live`: HS256 key of its tokens (unset: no tokens asked), allowed page origins,
    # caps (live/auth.py, live/hub.py)
    live_jwt_secret: str | None = Field(default=None, repr=False)
    live_origins: str = ""
    live_max_clients: int = 2_000
    live_max_per_user: int = 16
    live_max_subscriptions: int = 256
    # how often at most a relay client gets a write (messages between are sent together)
    live_flush_ms: int = 40
    # crawl redirects to non-public addresses: auto / refuse / allow (url_policy.py)
    http_private_redirects: str = "auto"
    # ---- issue 22 (ops): crawl metrics and retention archives ----
    metrics_host: str = "127.0.0.1"  # where `ingest metrics` listens (INGEST_METRICS_HOST)
    metrics_port: int = 8792  # INGEST_METRICS_PORT
    archive_url: str | None = None  # INGEST_ARCHIVE_URL: folder or fsspec URL of the archives
    # retention's throttle (storage/retention.py): pause after each step, ratio of its duration;
    # niceness the pass's process takes (never lowered; 0: as started)
    retention_pause_ratio: float = 0.5  # INGEST_RETENTION_PAUSE_RATIO (benchmarks/retention.py)
    retention_nice: int = 10  # INGEST_RETENTION_NICE

    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or local_data_dir() / "dagster_home")


def get_settings() -> Settings:
    """Read the settings from the environment now (cheap; not cached so tests can change them)."""
    settings = Settings()
    if not settings.redis_url:
        settings.redis_url = None
    return settings
