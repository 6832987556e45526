"""`ingest backfill --wait` and `ingest trigger --wait` against a real dagster-webserver and
daemon with Redis: the crawl's progress reaches the waiting terminal (here a pipe: lines)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import date, timedelta

import pytest

from ingestion_pipelines.replay.http_server import ReplayServer
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema
from ingestion_pipelines_tests.control.helpers import ProjectStack, ingest, project_workspace


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[ProjectStack]:
    redis_server.start()
    root = tmp_path_factory.mktemp("progress_stack")
    database_url = f"sqlite:///{root / 'ingest.db'}"
    ensure_schema(database_url)
    replay = ReplayServer().start()
    stack = ProjectStack(
        project_workspace(root / "workspace"),
        root=root / "dagster",
        env={
            **replay.env(),
            "INGEST_DATABASE_URL": database_url,
            "INGEST_LOCAL_DIR": str(root / "local"),
            "INGEST_REDIS_URL": redis_server.url(),
        },
    )
    try:
        stack.start()
        stack.wait_for_daemon(90)
        stack.redis_url = redis_server.url()
        yield stack
    finally:
        stack.close()
        replay.stop()
        dispose_all()


@pytest.fixture(autouse=True)
def _point_at_stack(stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_DAGSTER_URL", stack.url)
    monkeypatch.setenv("INGEST_REDIS_URL", stack.redis_url)


def test_backfill_wait_shows_the_crawls_progress(stack) -> None:
    start = date.today() - timedelta(days=60)
    out = ingest(
        "backfill",
        "fmarket_nav",
        "--from",
        str(start),
        "--to",
        str(start + timedelta(29)),
        "--wait",
    )
    assert out.code == 0, out.out + out.err
    lines = out.err.splitlines()
    assert lines, "nothing shown while waiting"
    assert all(line.startswith(f"  fmarket_nav {start}..") for line in lines), lines
    final = re.search(r"(\d+)/(\d+) requests \(100%\)", lines[-1])
    assert final and final[1] == final[2] and int(final[2]) > 1, lines[-1]
    assert "COMPLETED" in lines[-1]


def test_trigger_wait_shows_the_runs_progress(stack) -> None:
    out = ingest("trigger", "fear_greed", "--wait")
    assert out.code == 0, out.out + out.err
    assert ": SUCCESS" in out.out
    lines = out.err.splitlines()
    assert any("requests (100%)" in line for line in lines), lines
    assert "SUCCESS" in lines[-1]


def test_demo_says_when_the_ui_is_really_ready(stack) -> None:
    from ingestion_pipelines.control.ready import readiness, wait_until_ready
    from ingestion_pipelines.dagster_api.client import DagsterClient

    said: list[str] = []
    assert wait_until_ready(stack.url, threading.Event(), say=said.append, timeout_s=30)
    assert said[-1].startswith(f"  Dagster UI ready: {stack.url}")
    assert readiness(DagsterClient(stack.url)) == (True, "ready")

    nobody = "http://127.0.0.1:9"
    said.clear()
    assert not wait_until_ready(nobody, threading.Event(), say=said.append, timeout_s=1.5)
    assert said[0] == "  waiting for the Dagster UI: the webserver is starting"
    assert "not ready after 2 s" in said[-1] or "not ready after 1 s" in said[-1]
