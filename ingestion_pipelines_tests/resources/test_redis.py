from loguru import logger

from ingestion_pipelines.resources import redis as redis_resource
from ingestion_pipelines.resources.redis import RedisResource


def test_without_redis_features_fall_back_and_say_so_once(monkeypatch):
    monkeypatch.setattr(redis_resource, "_said", set())
    lines = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), format="{message}")
    try:
        resource = RedisResource()
        assert resource.client(feature="crawl progress") is None
        assert resource.client(feature="crawl progress") is None
    finally:
        logger.remove(sink)
    said = [line for line in lines if "INGEST_REDIS_URL is not set" in line]
    assert said == ["INGEST_REDIS_URL is not set: crawl progress uses its single-process fallback"]


def test_with_redis_the_client_is_shared_and_works(redis_url, monkeypatch):
    monkeypatch.setenv("INGEST_REDIS_URL", redis_url)
    client = RedisResource().client(feature="test")
    assert client is RedisResource().client(feature="test")
    client.set("ingest:test", "1")
    assert client.get("ingest:test") == b"1"
