"""`HttpClientResource`: the Dagster resource handing out `CrawlSession`s, with rate limits shared
through Redis when configured (one limiter per Redis URL and prefix per process)."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

import dagster as dg
from pydantic import Field

from ingestion_pipelines.http_client.session import (
    DEFAULT_USER_AGENT,
    CrawlSession,
    register_url_secrets,
)
from ingestion_pipelines.http_client.validators import ValidatorStore
from ingestion_pipelines.resources.rate_limit import (
    LocalRateLimiter,
    RateLimiter,
    RedisRateLimiter,
)

_limiters: dict[tuple[str, str], RateLimiter] = {}


_limiters_lock = threading.Lock()


_local_warning_logged = False


def _shared_rate_limiter(redis_url: str | None, prefix: str) -> RateLimiter:
    """One limiter per (Redis URL, prefix) per process, so all sessions share it."""
    global _local_warning_logged
    key = (redis_url or "", prefix)
    with _limiters_lock:
        limiter = _limiters.get(key)
        if limiter is not None:
            return limiter
        if redis_url:
            import redis
            from redis.backoff import ExponentialBackoff
            from redis.retry import Retry

            register_url_secrets(redis_url)
            client = redis.Redis.from_url(
                redis_url,
                socket_timeout=5,
                socket_connect_timeout=2,
                health_check_interval=30,
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
            )
            limiter = RedisRateLimiter(client, prefix=prefix)
        else:
            limiter = LocalRateLimiter()
            if not _local_warning_logged:
                _local_warning_logged = True
                from ingestion_pipelines.resources.redis import say_no_redis

                say_no_redis("HTTP rate limits, per process only")
        _limiters[key] = limiter
        return limiter


class HttpClientResource(dg.ConfigurableResource):
    """Hands out ``CrawlSession``s; rate limits are shared through Redis when configured.

    Usable outside Dagster too: ``HttpClientResource().session("worker")``.

    ``redis_url`` left ``None`` means "use ``INGEST_REDIS_URL`` if set, at run time": a
    Dagster ``EnvVar`` fails the run when the variable is unset, which the contract allows.
    """

    redis_url: str | None = Field(
        default=None,
        description="Redis URL for per-host rate limits shared by all processes. "
        "Empty string: no Redis, limits hold per process only. None: read the variable "
        "named by redis_url_env_var when a session is opened.",
    )
    redis_url_env_var: str | None = Field(
        default="INGEST_REDIS_URL",
        description="Environment variable read at run time when redis_url is None "
        "(None: never read the environment).",
    )
    user_agent_fallback: str = Field(
        default=DEFAULT_USER_AGENT,
        description="User-Agent sent when a session does not impersonate a browser.",
    )
    rate_limit_key_prefix: str = Field(
        default="ratelimit:", description="Prefix of the Redis keys of the rate limiter."
    )
    verify_tls: bool = Field(default=True, description="Verify TLS certificates.")
    private_redirects: str = Field(
        default="",
        description="Redirects to non-public addresses: auto, refuse or allow "
        "(empty: INGEST_HTTP_PRIVATE_REDIRECTS, default auto).",
    )

    def resolved_redis_url(self) -> str | None:
        """The Redis URL in effect (``None``: no Redis), read at call time, never at import."""
        url = self.redis_url
        if url is None and self.redis_url_env_var:
            url = os.environ.get(self.redis_url_env_var)
        return (url.strip() or None) if url else None

    def rate_limiter(self) -> RateLimiter:
        return _shared_rate_limiter(self.resolved_redis_url(), self.rate_limit_key_prefix)

    def session(
        self,
        worker_id: str,
        *,
        impersonate: str | None = "chrome",
        timeout_s: float = 30,
        proxy: str | None = None,
        rate_limit_per_s: float | None = None,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30,
        max_response_bytes: int = 50_000_000,
        validator_store: ValidatorStore | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> CrawlSession:
        return CrawlSession(
            worker_id,
            rate_limiter=self.rate_limiter(),
            impersonate=impersonate,
            timeout_s=timeout_s,
            proxy=proxy,
            rate_limit_per_s=rate_limit_per_s,
            max_retries=max_retries,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            max_response_bytes=max_response_bytes,
            validator_store=validator_store,
            headers=headers,
            user_agent=self.user_agent_fallback,
            verify_tls=self.verify_tls,
            private_redirects=self.private_redirects or None,
        )
