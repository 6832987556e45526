"""Shared by the live-relay tests: the app on a real uvicorn in a thread or `ingest live` as a
process, and a small Server-Sent Events reader over a raw HTTP connection."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ingestion_pipelines_tests.testbed.base import free_port


def wait_for(predicate, timeout: float, what: str, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


def get_json(port: int, path: str, headers: dict[str, str] | None = None) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def status_or_none(port: int, headers: dict[str, str] | None = None) -> dict | None:
    try:
        return get_json(port, "/status", headers)
    except OSError:
        return None


def request(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    """GET `path`: (status, headers in lower case, body); for a stream, its first bytes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        streaming = response.getheader("content-type", "").startswith("text/event-stream")
        body = response.read1(65536) if streaming else response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


@contextmanager
def live_in_thread(redis_url: str | None, status_headers=None, **options) -> Iterator[int]:
    """`create_app(redis_url, **options)` served by uvicorn on a free port; yields the port once
    the relay is subscribed to Redis (`status_headers`: how /status is asked, e.g. a token)."""
    import uvicorn

    from ingestion_pipelines.live.app import create_app

    port = free_port()
    app = create_app(redis_url, **options)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(target=server.run, name="live-test", daemon=True)
    thread.start()
    try:
        expected = "connected" if redis_url else "not configured"
        wait_for(
            lambda: (status_or_none(port, status_headers) or {}).get("redis") == expected,
            15,
            "the relay",
        )
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
        assert not thread.is_alive(), "the relay did not stop"


def _healthy(port: int) -> bool:
    try:
        return request(port, "/healthz")[0] == 200
    except OSError:
        return False


@contextmanager
def live_process(env: dict[str, str], log: Path, port: int) -> Iterator[subprocess.Popen]:
    """`ingest live --port PORT` as a real process; stopped with SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingestion_pipelines.cli", "live", "--port", str(port)],
        env={**os.environ, **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: _healthy(port) or proc.poll() is not None, 20, "ingest live")
        assert proc.poll() is None, log.read_text()
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Event:
    id: str | None = None
    event: str = "message"
    data_lines: list[str] = field(default_factory=list)
    comment: str | None = None

    @property
    def data(self):
        return json.loads("\n".join(self.data_lines))


class SSEReader:
    """GET /stream with optional Last-Event-ID; `next()` parses one event (or a comment)."""

    def __init__(
        self,
        port: int,
        query: str,
        last_event_id: str | None = None,
        timeout=10.0,
        headers: dict[str, str] | None = None,
    ):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        headers = {"Accept": "text/event-stream", **(headers or {})}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.conn.request("GET", f"/stream?{query}", headers=headers)
        self.response = self.conn.getresponse()

    def next(self) -> Event | None:
        """The next event or comment; None at the end of the stream."""
        event = Event()
        while True:
            line = self.response.readline()
            if not line:
                return None
            text = line.decode().rstrip("\n")
            if text == "":
                if event.data_lines or event.comment is not None or event.event != "message":
                    return event
                continue
            name, _, value = text.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "":
                event.comment = value
            elif name == "id":
                event.id = value
            elif name == "event":
                event.event = value
            elif name == "data":
                event.data_lines.append(value)

    def messages(self, count: int) -> list[Event]:
        """The next `count` data events (heartbeats skipped)."""
        out = []
        while len(out) < count:
            event = self.next()
            assert event is not None, f"stream ended after {len(out)} of {count} events"
            if event.comment is None and event.event == "message":
                out.append(event)
        return out

    def close(self) -> None:
        self.response.close()  # the response holds the socket open too
        self.conn.close()
