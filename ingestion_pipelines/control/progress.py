"""Progress while `ingest trigger --wait` / `ingest backfill --wait` wait: requests done of
total, rows, rate and ETA.

    with WaitProgress(client, "fmarket_nav 2024-01-01..2024-12-31") as progress:
        backfill(client, ..., wait=True, on_poll=progress.poll)

Where the figures come from: the crawl's `progress:<run_id>` messages on Redis (about every
second, when INGEST_REDIS_URL is set) and the run's own log events (`progress: N/M requests`,
at least every 10 s, read over GraphQL), whichever is further along. On a terminal a `rich`
progress bar redraws in place; otherwise (a pipe, a CI log) one line every `every_s` seconds
and one at each status change.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson
from loguru import logger

from ingestion_pipelines.control.render import span
from ingestion_pipelines.dagster_api.client import ControlError, DagsterClient

LINE_EVERY_S = 10.0
_LOGGED = re.compile(r"progress: (\d+)/(\d+) requests")
_ROWS = re.compile(r"(\d+) rows")


@dataclass
class RunFigures:
    """The newest progress known for one run."""

    done: int = 0
    total: int = 0
    rows: int | None = None

    def merge(self, done: int, total: int, rows: int | None) -> None:
        if (done, total) >= (self.done, self.total) or total != self.total:
            self.done, self.total = done, total
        if rows is not None:
            self.rows = max(rows, self.rows or 0)


@dataclass
class Snapshot:
    """What the display shows: summed over the runs being waited on."""

    status: str
    done: int
    total: int
    rows: int | None
    rate: float | None  # requests per second since the first progress was seen
    eta_s: float | None
    elapsed_s: float

    def line(self, label: str, elapsed: bool = True) -> str:
        bits = [f"{label}: {self.status}"]
        if self.total:
            bits.append(f"{self.done}/{self.total} requests ({100 * self.done / self.total:.0f}%)")
        if self.rows is not None:
            bits.append(f"{self.rows:,} rows")
        if self.rate is not None:
            bits.append(f"{self.rate:.1f} req/s")
        if self.eta_s is not None:
            bits.append(f"ETA {span(self.eta_s)}")
        if elapsed:
            bits.append(f"elapsed {span(self.elapsed_s)}")
        return ", ".join(bits)


class ProgressFeed:
    """Collects progress for runs from Redis and from their log events."""

    def __init__(self, client: DagsterClient, redis_url: str | None):
        self.client = client
        self.runs: dict[str, RunFigures] = {}
        self._cursors: dict[str, str | None] = {}
        self._pubsub = None
        if redis_url:
            try:
                import redis

                self._pubsub = redis.Redis.from_url(redis_url, socket_timeout=2).pubsub(
                    ignore_subscribe_messages=True
                )
            except Exception as exc:  # noqa: BLE001 - the run events still tell
                logger.debug("progress over Redis unavailable: {}", exc)

    def follow(self, run_id: str) -> None:
        if run_id in self.runs:
            return
        self.runs[run_id] = RunFigures()
        self._cursors[run_id] = None
        if self._pubsub is not None:
            try:
                self._pubsub.subscribe(f"progress:{run_id}")
            except Exception as exc:  # noqa: BLE001
                logger.debug("progress over Redis unavailable: {}", exc)
                self._pubsub = None

    def refresh(self) -> None:
        """Read what arrived since the last call (never waits on Redis)."""
        self._read_redis()
        for run_id in self.runs:
            self._read_events(run_id)

    def _read_redis(self) -> None:
        while self._pubsub is not None:
            try:
                message = self._pubsub.get_message(timeout=0)
            except Exception as exc:  # noqa: BLE001 - fall back to the run events
                logger.debug("progress over Redis lost: {}", exc)
                self._pubsub = None
                return
            if message is None:
                return
            run_id = message["channel"].decode().partition(":")[2]
            try:
                data = orjson.loads(message["data"])
                figures = self.runs[run_id]
                figures.merge(int(data["done"]), int(data["total"]), _int(data.get("rows")))
            except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
                continue

    def _read_events(self, run_id: str) -> None:
        try:
            data = self.client.execute(
                "RunEvents", {"runId": run_id, "afterCursor": self._cursors[run_id], "limit": 500}
            )
        except ControlError:
            return
        page = data.get("logsForRun") or {}
        if page.get("__typename") != "EventConnection":
            return
        for event in page.get("events") or []:
            match = _LOGGED.search(event.get("message") or "")
            if match:
                rows = _ROWS.search(event["message"][match.end() :])
                self.runs[run_id].merge(
                    int(match[1]), int(match[2]), int(rows[1]) if rows else None
                )
        self._cursors[run_id] = page.get("cursor") or self._cursors[run_id]

    def close(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                self._pubsub.close()


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass
class WaitProgress:
    """The display of one wait; `poll` is given each run or backfill the wait polls."""

    client: DagsterClient
    label: str
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    every_s: float = LINE_EVERY_S
    tty: bool | None = None
    redis_url: str | None = None

    def __post_init__(self) -> None:
        if self.tty is None:
            self.tty = self.stream.isatty()
        if self.redis_url is None:
            from ingestion_pipelines.core.settings import get_settings

            self.redis_url = get_settings().redis_url
        self.feed = ProgressFeed(self.client, self.redis_url)
        self.started = time.monotonic()
        self._first: tuple[float, int] | None = None  # (when, done) of the first progress seen
        self._last_line = time.monotonic()
        self._last_status: str | None = None
        self._bar = None
        self._task = None

    def __enter__(self) -> WaitProgress:
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=20),
                TextColumn("{task.fields[figures]}"),
                console=Console(file=self.stream, force_terminal=True),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=None, figures="waiting")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
        self.feed.close()

    def poll(self, item: dict[str, Any]) -> None:
        """Called with the run (`runId`, `status`) or backfill (`runs`, `status`) just polled."""
        for run in item.get("runs") or ([item] if item.get("runId") else []):
            self.feed.follow(run["runId"])
        self.feed.refresh()
        self.show(self.snapshot(str(item.get("status"))))

    def snapshot(self, status: str, now: float | None = None) -> Snapshot:
        now = time.monotonic() if now is None else now
        figures = self.feed.runs.values()
        done = sum(f.done for f in figures)
        total = sum(f.total for f in figures)
        rows_known = [f.rows for f in figures if f.rows is not None]
        rate = eta = None
        if total and self._first is None:
            self._first = (now, done)
        if self._first is not None and now - self._first[0] >= 1.0 and done > self._first[1]:
            rate = (done - self._first[1]) / (now - self._first[0])
            eta = (total - done) / rate
        return Snapshot(
            status=status,
            done=done,
            total=total,
            rows=sum(rows_known) if rows_known else None,
            rate=rate,
            eta_s=eta,
            elapsed_s=now - self.started,
        )

    def show(self, snap: Snapshot) -> None:
        if self._bar is not None:
            figures = snap.line(snap.status, elapsed=False).partition(": ")[2]
            self._bar.update(
                self._task,
                total=snap.total or None,
                completed=snap.done,
                figures=figures,
                refresh=True,
            )
            return
        now = time.monotonic()
        if snap.status != self._last_status or now - self._last_line >= self.every_s:
            self._last_line = now
            self._last_status = snap.status
            print(f"  {snap.line(self.label)}", file=self.stream, flush=True)
