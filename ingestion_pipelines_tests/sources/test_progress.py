import orjson
import redis
from loguru import logger

from ingestion_pipelines.sources.factory import Progress


def test_progress_is_logged_and_published_on_the_runs_channel(redis_url):
    client = redis.Redis.from_url(redis_url)
    subscriber = client.pubsub()
    subscriber.subscribe("progress:run-42")
    assert subscriber.get_message(timeout=2)["type"] == "subscribe"
    lines = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), format="{message}")
    try:
        progress = Progress("fmarket_nav", "run-42", client, every_s=0)
        progress(1, 4)
        progress(4, 4)
    finally:
        logger.remove(sink)
    assert "progress: 1/4 requests (25%)" in lines
    first = subscriber.get_message(timeout=2)
    assert orjson.loads(first["data"]) == {
        "worker_id": "fmarket_nav",
        "done": 1,
        "total": 4,
        "percent": 25.0,
    }
    last = subscriber.get_message(timeout=2)  # the last step is always published
    assert orjson.loads(last["data"])["done"] == 4


def test_progress_logs_at_most_every_interval():
    lines = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), format="{message}")
    try:
        progress = Progress("fmarket_nav", "run-1", None, every_s=3600)
        for done in range(1, 100):
            progress(done, 100)
    finally:
        logger.remove(sink)
    assert not [line for line in lines if line.startswith("progress:")]
