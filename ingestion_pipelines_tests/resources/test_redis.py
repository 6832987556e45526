from loguru import logger

from ingestion_pipelines.core import redis_client
from ingestion_pipelines.resources.redis import RedisResource


def test_without_redis_the_fallback_is_said_once_per_process_at_info_level(monkeypatch):
    import threading

    from ingestion_pipelines.http_client.resource import HttpClientResource

    monkeypatch.delenv("INGEST_REDIS_URL", raising=False)
    monkeypatch.setattr(redis_client, "_said", threading.Event())
    records = []
    sink = logger.add(lambda m: records.append(m.record), format="{message}")
    try:
        resource = RedisResource()
        assert resource.client(feature="crawl progress") is None
        assert resource.client(feature="crawl progress") is None
        assert resource.client(feature="live state") is None
        # The HTTP rate limiter's fallback goes through the same single sentence.
        HttpClientResource(redis_url="", rate_limit_key_prefix="test-once:").rate_limiter()
    finally:
        logger.remove(sink)
    said = [r for r in records if "INGEST_REDIS_URL is not set" in r["message"]]
    assert [(r["level"].name, r["message"]) for r in said] == [
        (
            "INFO",
            "INGEST_REDIS_URL is not set: features using Redis run single-process fallbacks "
            "(first: crawl progress)",
        )
    ]


def test_with_redis_the_client_is_shared_and_works(redis_url, monkeypatch):
    monkeypatch.setenv("INGEST_REDIS_URL", redis_url)
    client = RedisResource().client(feature="test")
    assert client is RedisResource().client(feature="test")
    client.set("ingest:test", "1")
    assert client.get("ingest:test") == b"1"
