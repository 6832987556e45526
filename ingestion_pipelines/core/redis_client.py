"""Optional Redis: features that use it fall back to single-process versions when it is unset.

Plain code (the sidecar uses it); `resources.redis.RedisResource` wraps it for Dagster."""

from __future__ import annotations

import threading

import redis
from loguru import logger

from ingestion_pipelines.core.redaction import register_secret
from ingestion_pipelines.core.settings import get_settings

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()
_said = threading.Event()


def say_no_redis(feature: str = "") -> None:
    """Say, once per process and at info level, that Redis is not configured and every feature
    using it (rate limits, crawl progress, live state...) runs its single-process fallback."""
    with _lock:
        if _said.is_set():
            return
        _said.set()
    logger.info(
        "INGEST_REDIS_URL is not set: features using Redis run single-process fallbacks{}",
        f" (first: {feature})" if feature else "",
    )


def get_redis(url: str | None = None, *, feature: str = "") -> redis.Redis | None:
    """The shared client for `url` (default `INGEST_REDIS_URL`), or None when Redis is not
    configured (said once per process, see `say_no_redis`)."""
    url = url if url is not None else get_settings().redis_url
    if not url:
        say_no_redis(feature)
        return None
    with _lock:
        client = _clients.get(url)
        if client is None:
            password = redis.connection.parse_url(url).get("password")
            if password:
                register_secret(password)
            client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
            _clients[url] = client
        return client
