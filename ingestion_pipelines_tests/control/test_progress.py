"""The progress display of `--wait`: figures from a real Redis `progress:<run_id>` channel, a
line every N seconds when not on a terminal, a rich bar on one, rate and ETA."""

from __future__ import annotations

import io
import time

import orjson
import redis

from ingestion_pipelines.control.progress import Snapshot, WaitProgress
from ingestion_pipelines.dagster_api.client import DagsterClient
from ingestion_pipelines_tests.live.helpers import wait_for

NOBODY = "http://127.0.0.1:9"  # no webserver: the run events add nothing, Redis must suffice


def _publish(r: redis.Redis, run_id: str, done: int, total: int, **extra) -> None:
    # The shape sources/factory.py's Progress publishes.
    message = {"worker_id": "fmarket_nav", "done": done, "total": total, **extra}
    message["percent"] = 100.0 * done / total
    r.publish(f"progress:{run_id}", orjson.dumps(message))


def test_snapshot_line_has_requests_rows_rate_and_eta() -> None:
    snap = Snapshot("STARTED", 120, 600, 5400, 12.0, 40.0, 10.0)
    assert snap.line("fmarket_nav") == (
        "fmarket_nav: STARTED, 120/600 requests (20%), 5,400 rows, 12.0 req/s, ETA 40 s, "
        "elapsed 10 s"
    )
    assert Snapshot("QUEUED", 0, 0, None, None, None, 2.0).line("x") == "x: QUEUED, elapsed 2.0 s"


def test_lines_every_interval_from_the_redis_progress_channel(redis_url) -> None:
    r = redis.Redis.from_url(redis_url)
    out = io.StringIO()
    client = DagsterClient(NOBODY, timeout_s=1)
    with WaitProgress(client, "fmarket_nav", out, every_s=0.5, redis_url=redis_url) as view:
        run = {"runId": "run-1", "status": "QUEUED"}
        view.poll(run)  # subscribes to progress:run-1
        wait_for(lambda: r.pubsub_numsub("progress:run-1")[0][1] == 1, 5, "the subscription")
        run["status"] = "STARTED"
        for done in range(0, 61, 10):
            _publish(r, "run-1", done, 60, rows=done * 100)
            time.sleep(0.3)
            view.poll(run)
        run["status"] = "SUCCESS"
        view.poll(run)
    lines = out.getvalue().splitlines()
    assert lines[0] == "  fmarket_nav: QUEUED, elapsed " + lines[0].rsplit("elapsed ", 1)[1]
    assert any("STARTED" in line and "requests" in line for line in lines)
    assert "60/60 requests (100%), 6,000 rows" in lines[-1] and "SUCCESS" in lines[-1]
    # one line per status change plus about one per 0.5 s over the 2.1 s it ran, not per poll
    assert 4 <= len(lines) <= 8, lines
    started = [line for line in lines if "STARTED" in line and "req/s" in line]
    assert started, "a rate once the requests advance"
    assert "ETA" in started[-1]


def test_a_terminal_gets_a_progress_bar(redis_url) -> None:
    r = redis.Redis.from_url(redis_url)
    out = io.StringIO()
    client = DagsterClient(NOBODY, timeout_s=1)
    with WaitProgress(client, "fear_greed", out, tty=True, redis_url=redis_url) as view:
        run = {"runId": "run-2", "status": "STARTED"}
        view.poll(run)
        wait_for(lambda: r.pubsub_numsub("progress:run-2")[0][1] == 1, 5, "the subscription")
        _publish(r, "run-2", 3, 4)
        wait_for(lambda: view.poll(run) or view.feed.runs["run-2"].done == 3, 5, "progress")
    text = out.getvalue()
    assert "fear_greed" in text and "3/4 requests (75%)" in text
    assert "\x1b[" in text and "━" in text  # drawn in place with a bar
