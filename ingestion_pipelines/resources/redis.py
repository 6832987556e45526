"""Redis as a Dagster resource; the client itself is `ingestion_pipelines.core.redis_client`."""

from __future__ import annotations

import dagster as dg
import redis

# say_no_redis is re-exported for callers that still import it from here.
from ingestion_pipelines.core.redis_client import get_redis, say_no_redis  # noqa: F401


class RedisResource(dg.ConfigurableResource):
    """`url` overrides `INGEST_REDIS_URL` (read when used, not at load); with neither, no Redis."""

    url: str | None = None

    def client(self, feature: str = "") -> redis.Redis | None:
        return get_redis(self.url or None, feature=feature)
