"""The writer: one thread per database, taking parsed rows from every feed that writes there.

(`ingest sidecar` runs the same write path in a process of its own, fed over a socket:
`writer_process.py`. Both adapters hand their batches to one `committer.BatchCommitter`.)

- `submit()` appends to a bounded in-memory queue (never blocks the caller for long: when the
  queue is full it returns False and the engine disconnects until there is room again, so memory
  stays flat whatever happens downstream);
- batches by size (`batch_rows`) and time (`max_delay_s`), one transaction per batch, through the
  committer: idempotent upserts with each table's conflict rule (`table_policy`), fencing, live
  bars, the disk spool while the database is down, poison isolated to `dead_letter`;
- while the committer holds batches (database down, spool full) the thread stops taking from the
  queue, which fills and backs the engines off, so nothing is dropped silently.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ingestion_pipelines.sidecar.committer import BatchCommitter, Item
from ingestion_pipelines.sidecar.spool import Spool
from ingestion_pipelines.sidecar.write_metrics import WriteMetrics


class Writer:
    """Batches rows from feeds into one database from its own thread (see module doc)."""

    def __init__(
        self,
        database_url: str,
        *,
        spools: Callable[[str], Spool],
        batch_rows: int = 2000,
        max_delay_s: float = 0.05,
        capacity_rows: int = 100_000,
        retry_s: float = 1.0,
        publisher: Any = None,
        guard: Callable[[str], bool] | None = None,
        fence: Callable[[str], int | None] | None = None,
        on_commit: Callable[[str, str, list[dict[str, Any]], float], None] | None = None,
        live_bars: bool = True,
    ):
        self.database_url = database_url
        self.batch_rows = batch_rows
        self.max_delay_s = max_delay_s
        self.capacity_rows = capacity_rows
        self.retry_s = retry_s
        self.committer = BatchCommitter(
            database_url,
            spools=spools,
            retry_s=retry_s,
            publisher=publisher,
            guard=guard,
            fence=fence,
            on_commit=on_commit,
            live_bars=live_bars,
        )
        self._queue: deque[Item] = deque()
        self._queued_rows = 0
        self._count_lock = threading.Lock()
        self._wake = threading.Event()
        self._room = threading.Condition()
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sidecar-writer", daemon=True)

    # ---- caller side -------------------------------------------------------------------------
    def start(self) -> Writer:
        """Start the writer's thread."""
        self._thread.start()
        return self

    @property
    def metrics(self) -> dict[str, WriteMetrics]:
        """The write metrics of every feed, by feed id."""
        return self.committer.metrics

    @property
    def down(self) -> bool:
        """Whether the database is unavailable (batches go to the spools)."""
        return self.committer.down

    def metrics_for(self, feed_id: str) -> WriteMetrics:
        """The write metrics of a feed (created on first use)."""
        return self.committer.metrics_for(feed_id)

    def has_room(self) -> bool:
        """Whether the queue holds fewer rows than its capacity."""
        return self._queued_rows < self.capacity_rows

    def submit(
        self,
        feed_id: str,
        table: str,
        rows: list[dict[str, Any]],
        on_conflict: str = "ignore",
        wait_s: float = 1.0,
    ) -> bool:
        """Queue rows; False when the queue stayed full for `wait_s` (the caller backs off)."""
        if self._queued_rows >= self.capacity_rows:
            with self._room:
                if not self._room.wait_for(self.has_room, wait_s):
                    return False
        with self._count_lock:
            self._queue.append((feed_id, table, on_conflict, rows))
            self._queued_rows += len(rows)
        if self._queued_rows >= self.batch_rows and not self._wake.is_set():
            self._wake.set()
        return True

    @property
    def pending_rows(self) -> int:
        """Rows queued or held, not yet committed or spooled."""
        return self._queued_rows + self.committer.held_rows

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far is committed or spooled."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._queue and not self.committer.held and self._idle.is_set():
                return True
            self._wake.set()
            time.sleep(0.01)
        return False

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Write (or spool) everything queued, then stop the thread. True if nothing was left."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout_s)
        self.committer.close()
        return not self._thread.is_alive() and not self._queue and not self.committer.held

    def spool(self, feed_id: str) -> Spool:
        """The disk spool of a feed."""
        return self.committer.spool(feed_id)

    def replay_spool(self, feed_id: str) -> int:
        """Write the feed's spooled batches (oldest first); returns rows replayed. Raises on outage."""
        return self.committer.replay_spool(feed_id)

    def engine(self):
        """The SQLAlchemy engine of the database (the schema checked on first use)."""
        return self.committer.engine()

    # ---- the thread ----------------------------------------------------------------------------
    def _take(self) -> list[Item]:
        items: list[Item] = []
        count = 0
        queue = self._queue
        with self._count_lock:
            while queue and count < self.batch_rows:
                item = queue.popleft()
                items.append(item)
                count += len(item[3])
            self._queued_rows -= count
        with self._room:
            self._room.notify_all()
        return items

    def _run(self) -> None:
        committer = self.committer
        while True:
            stopping = self._stopping.is_set()
            if not stopping and self._queued_rows < self.batch_rows:
                self._idle.set()
                self._wake.wait(self.max_delay_s)
                self._wake.clear()
            committer.recover_if_due()
            if not committer.retry_held():  # still nowhere to put them: let the queue fill
                if stopping:
                    return
                self._stopping.wait(self.retry_s)
                continue
            items = self._take()
            if not items:
                if (stopping or self._stopping.is_set()) and not self._queue:
                    return
                continue
            self._idle.clear()
            committer.write(items)
