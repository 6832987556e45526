"""The writer in its own process, so that receiving and parsing (the feed engines) and writing use
two cores instead of sharing one interpreter lock.

`ProcessWriter` has the interface of `Writer` (submit, has_room, flush, stop, metrics_for, spool,
replay_spool, down, pending_rows). Its child (`python -m ingestion_pipelines.sidecar.writer_process`:
a fresh, Dagster-free interpreter, not a fork of the sidecar; `writer_child.py`) runs the
writer's `BatchCommitter`, so every database, spool, poison, fencing, bar and publish step is the
in-process one.

- Rows cross a socket pair as batches in the spool's JSON encoding: the engines' submits collect
  in a buffer that a sender thread ships when it holds `batch_rows` rows or its oldest row is
  `max_delay_s` old (one message per batch). The child takes every message waiting (up to
  `TRANSACTION_MAX_ROWS` rows) into one transaction: large transactions under load, a commit at
  once when the feed is quiet.
- Every batch stays in the parent until the child acknowledges it (committed, spooled,
  dead-lettered or dropped as not owned); `capacity_rows` bounds the rows not acknowledged, so a
  slow database backs the engines off as before.
- A child that dies (kill -9, out of memory, a crash in a driver) is noticed at once (its socket
  closes) and logged as an error; a new child starts (with backoff), replays the spools first and
  gets every unacknowledged batch again, in order. Trades are inserted with ignore semantics and
  bars reload from `trade_tick`, and dead letters are ignored by fingerprint, so a batch
  committed just before the crash is not stored twice. Nothing read is lost while the sidecar
  itself lives; if the sidecar dies too, the restart fetches the gap as after any kill.
- Ownership: each batch carries its feeds' (owns, fencing token) read when it is sent; the child
  checks the token inside the batch's transaction as before.
- The child's metrics come back with each acknowledgement; a new child starts from the last ones.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from loguru import logger

import ingestion_pipelines
from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.core.retry import Backoff
from ingestion_pipelines.sidecar.committer import Item
from ingestion_pipelines.sidecar.spool import DEFAULT_MAX_BYTES, Spool
from ingestion_pipelines.sidecar.write_metrics import WriteMetrics
from ingestion_pipelines.sidecar.writer_child import encoded, grouped
from ingestion_pipelines.storage.engines import ensure_schema

# A writer process dying this many times within this window is failing, not unlucky: the
# sidecar's probes say so (/healthz 503), so the orchestrator restarts the replica.
CRASH_LOOP_RESTARTS = 5
CRASH_LOOP_WINDOW_S = 60.0


class WriterProcessError(IngestError, RuntimeError):
    """The writer process could not do what was asked (it died or was restarted meanwhile)."""

    transient = True


class ProcessWriter:
    """Batches rows from feeds into one database through a writer process (see module doc)."""

    def __init__(
        self,
        database_url: str,
        *,
        spool_dir: Path,
        spool_max_bytes: int = DEFAULT_MAX_BYTES,
        batch_rows: int = 2000,
        max_delay_s: float = 0.01,
        capacity_rows: int = 100_000,
        retry_s: float = 1.0,
        redis_url: str | None = None,
        guard: Callable[[str], bool] | None = None,
        fence: Callable[[str], int | None] | None = None,
        on_commit: Callable[[str, str, list[dict[str, Any]], float], None] | None = None,
        live_bars: bool = True,
    ):
        self.database_url = database_url
        self.spool_dir = spool_dir
        self.spool_max_bytes = spool_max_bytes
        self.batch_rows = batch_rows
        self.max_delay_s = max_delay_s
        self.capacity_rows = capacity_rows
        self.retry_s = retry_s
        self.redis_url = redis_url
        self.guard = guard
        self.fence = fence
        self.on_commit = on_commit
        self.live_bars = live_bars
        self.metrics: dict[str, WriteMetrics] = {}
        self.down = False  # the database, as the child last said, or no child running
        self.restarts = 0
        self.last_exit_code: int | None = None
        self._restarted_at: deque[float] = deque(maxlen=CRASH_LOOP_RESTARTS)
        self._spools: dict[str, Spool] = {}
        self._feeds: set[str] = set()  # every feed seen: a new child replays their spools
        self._cond = threading.Condition(threading.Lock())  # never taken twice by one thread
        self._send_lock = threading.Lock()
        self._buffer: list[Item] = []
        self._buffer_rows = 0
        self._buffer_since = 0.0
        self._unacked: dict[int, tuple[list[Item], int]] = {}
        self._unacked_rows = 0
        self._seq = itertools.count(1)
        self._requests: dict[int, list[Any]] = {}
        self._request_ids = itertools.count(1)
        self._stopping = False
        self._ready = threading.Event()
        self.ready_timeout_s = 10.0
        self._child: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._engine = None
        self._backoff = Backoff(base_s=0.2, cap_s=10.0)
        self._sender = threading.Thread(target=self._send_loop, name="writer-sender", daemon=True)
        self._receiver = threading.Thread(
            target=self._receive_loop, name="writer-receiver", daemon=True
        )

    # ---- caller side (the interface of Writer) ---------------------------------------------
    def start(self) -> ProcessWriter:
        """Start the writer process and the threads that talk to it."""
        with self._send_lock:
            self._spawn()
        self._sender.start()
        self._receiver.start()
        # feeds start reading once their rows can be written (an import and a connection away)
        if not self._ready.wait(self.ready_timeout_s):
            logger.warning("the writer process is not ready after {} s", self.ready_timeout_s)
        return self

    @property
    def child_pid(self) -> int | None:
        """The writer process's id (None before start)."""
        return self._child.pid if self._child is not None else None

    def metrics_for(self, feed_id: str) -> WriteMetrics:
        """The write metrics of a feed (created on first use; updated from the child)."""
        m = self.metrics.get(feed_id)
        if m is None:
            m = self.metrics[feed_id] = WriteMetrics()
        return m

    def has_room(self) -> bool:
        """Whether fewer rows than the capacity wait to be acknowledged."""
        return self._buffer_rows + self._unacked_rows < self.capacity_rows

    @property
    def pending_rows(self) -> int:
        """Rows submitted and not yet committed or spooled."""
        return self._buffer_rows + self._unacked_rows

    def submit(
        self,
        feed_id: str,
        table: str,
        rows: list[dict[str, Any]],
        on_conflict: str = "ignore",
        wait_s: float = 1.0,
    ) -> bool:
        """Queue rows; False when there was no room for `wait_s` (the caller backs off)."""
        with self._cond:
            if not self.has_room() and not self._cond.wait_for(self.has_room, wait_s):
                return False
            if not self._buffer:
                self._buffer_since = time.monotonic()
                self._cond.notify_all()
            self._buffer.append((feed_id, table, on_conflict, rows))
            self._buffer_rows += len(rows)
            if self._buffer_rows >= self.batch_rows:
                self._cond.notify_all()
        if feed_id not in self._feeds:
            self._feeds.add(feed_id)
        return True

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything submitted so far is committed or spooled."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._buffer_since = 0.0  # send what is buffered now
            self._cond.notify_all()
            return self._cond.wait_for(
                lambda: not self._buffer and not self._unacked,
                max(0.0, deadline - time.monotonic()),
            )

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Write (or spool) everything submitted, then end the child. True if nothing was left."""
        deadline = time.monotonic() + timeout_s
        flushed = self.flush(max(0.1, timeout_s - 0.5))
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._sender.join(max(0.1, deadline - time.monotonic()))
        child = self._child
        with self._send_lock:
            if self._conn is not None:
                self._send(("stop",))
        # the child says "stopped" once everything is written; its own exit is not waited for
        self._receiver.join(max(0.1, deadline - time.monotonic()))
        if child is not None:
            if self._receiver.is_alive():
                logger.error("the writer process did not stop in time: killed")
                child.kill()
            threading.Thread(target=child.wait, name="writer-reaper", daemon=True).start()
        for spool in self._spools.values():
            spool.close()
        return flushed and not self._buffer and not self._unacked

    def spool(self, feed_id: str) -> Spool:
        """The disk spool of a feed (read here; the child appends and replays)."""
        spool = self._spools.get(feed_id)
        if spool is None:
            spool = self._spools[feed_id] = Spool(self.spool_dir / feed_id, self.spool_max_bytes)
        return spool

    def replay_spool(self, feed_id: str, timeout_s: float = 30.0) -> int:
        """Have the child write the feed's spooled batches now; rows replayed. Raises when the
        database is unavailable (the child replays it when the database returns)."""
        self._feeds.add(feed_id)
        if not self.spool(feed_id).size():  # nothing to replay: no round trip (a feed starting
            return 0  # must not wait for the child to be up)
        request_id = next(self._request_ids)
        waiter: list[Any] = [threading.Event(), None, None]
        self._requests[request_id] = waiter
        try:
            with self._send_lock:
                self._send(("replay", request_id, feed_id))
            if not waiter[0].wait(timeout_s):
                raise WriterProcessError(f"{feed_id}: spool replay not done in {timeout_s} s")
        finally:
            self._requests.pop(request_id, None)
        if waiter[2] is not None:
            raise WriterProcessError(f"{feed_id}: spool not replayed: {waiter[2]}")
        return waiter[1]

    def engine(self):
        """An engine on the database for reads in this process (the child does the writes)."""
        if self._engine is None:
            self._engine = ensure_schema(self.database_url)
        return self._engine

    # ---- the child -------------------------------------------------------------------------
    def _spawn(self) -> None:
        """Start a child and hand it its settings (caller holds the send lock)."""
        ours, theirs = socket.socketpair()
        package_root = str(Path(ingestion_pipelines.__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self._child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ingestion_pipelines.sidecar.writer_process",
                str(theirs.fileno()),
            ],
            pass_fds=(theirs.fileno(),),
            env=env,
        )
        theirs.close()
        self._conn = Connection(ours.detach())
        from ingestion_pipelines.core import redaction
        from ingestion_pipelines.storage import logs

        self._conn.send(
            {
                "database_url": self.database_url,
                "spool_dir": str(self.spool_dir),
                "spool_max_bytes": self.spool_max_bytes,
                "redis_url": self.redis_url,
                "writer": {
                    "batch_rows": self.batch_rows,
                    "retry_s": self.retry_s,
                    "live_bars": self.live_bars,
                },
                "metrics": self.metrics,
                "feeds": sorted(self._feeds),
                "want_commits": self.on_commit is not None,
                "logging": logs._stderr is not None,  # the sidecar set its log format up
                "log_to_database": logs._writer is not None,
                "secrets": sorted(redaction._known_secrets),
            }
        )

    def _send(self, message: tuple) -> None:
        """Send to the child (caller holds the send lock); a dead child is left to the receiver,
        which restarts it and sends every unacknowledged batch again."""
        with contextlib.suppress(OSError):
            self._conn.send(message)

    def _ownership(self, items: list[Item]) -> dict[str, tuple[bool, int | None]]:
        feeds = {item[0] for item in items}
        return {
            f: (
                self.guard(f) if self.guard is not None else True,
                self.fence(f) if self.fence is not None else None,
            )
            for f in feeds
        }

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._buffer:
                        age = time.monotonic() - self._buffer_since
                        if self._buffer_rows >= self.batch_rows or age >= self.max_delay_s:
                            break
                        self._cond.wait(self.max_delay_s - age)
                    elif self._stopping:
                        return
                    else:
                        self._cond.wait()
            with self._send_lock:  # registered and sent as one step: a restart resends it
                with self._cond:
                    taken, rows = self._buffer, self._buffer_rows
                    self._buffer, self._buffer_rows = [], 0
                    seq = next(self._seq)
                    self._unacked[seq] = (taken, rows)
                    self._unacked_rows += rows
                items = grouped(taken)  # (outside the lock the engines submit under)
                self._unacked[seq] = (items, rows)
                self._send_batch(seq, items)

    def _send_batch(self, seq: int, items: list[Item]) -> None:
        self._send(("batch", seq, self._ownership(items), [encoded(item) for item in items]))

    def _receive_loop(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                if self._stopping:
                    return
                self._restart()
                continue
            kind = message[0]
            if kind == "ack":
                self._acked(*message[1:])
            elif kind == "state":
                self._update(message[1], message[2])
            elif kind == "replayed":
                waiter = self._requests.get(message[1])
                if waiter is not None:
                    waiter[1], waiter[2] = message[2], message[3]
                    waiter[0].set()
            elif kind == "ready":
                self._ready.set()
            elif kind == "stopped":
                self._update(message[1], message[2])
                return

    def _update(self, metrics: dict[str, WriteMetrics], down: bool) -> None:
        for feed_id, values in metrics.items():
            vars(self.metrics_for(feed_id)).update(vars(values))
        self.down = down

    def _acked(self, seqs, metrics, down, commits) -> None:
        with self._cond:
            batches = [self._unacked.pop(seq, None) for seq in seqs]
            self._unacked_rows -= sum(b[1] for b in batches if b is not None)
            self._cond.notify_all()
        self._update(metrics, down)
        if self.on_commit is not None and commits:
            flat = [row for b in batches if b is not None for item in b[0] for row in item[3]]
            for feed_id, table, committed, positions in commits:
                self.on_commit(feed_id, table, [flat[p] for p in positions], committed)
        self._backoff.reset()

    def crash_loop(self) -> str | None:
        """Why the writer process counts as failing (None: it does not): it died
        `CRASH_LOOP_RESTARTS` times within `CRASH_LOOP_WINDOW_S`, so restarting it is not
        helping and the replica should be restarted (its shards move to another)."""
        times = list(self._restarted_at)
        if len(times) < CRASH_LOOP_RESTARTS or time.monotonic() - times[0] > CRASH_LOOP_WINDOW_S:
            return None
        return (
            f"the writer process died {len(times)} times within {CRASH_LOOP_WINDOW_S:.0f} s "
            f"(last exit code {self.last_exit_code})"
        )

    def _restart(self) -> None:
        """The child died: say so, start another, send it every unacknowledged batch again."""
        child = self._child
        code = child.wait() if child is not None else None
        self.last_exit_code = code
        self._restarted_at.append(time.monotonic())
        self.down = True
        with self._cond:
            waiting = self._unacked_rows
        logger.error(
            "the writer process {} ended unexpectedly (exit code {}): restarting it; {} rows "
            "not yet acknowledged are sent again",
            child.pid if child else None,
            code,
            waiting,
        )
        for waiter in list(self._requests.values()):
            waiter[2] = f"the writer process ended (exit code {code})"
            waiter[0].set()
        time.sleep(self._backoff.next())
        with self._send_lock:
            if self._stopping:
                return
            self.restarts += 1
            with contextlib.suppress(OSError):
                self._conn.close()
            self._spawn()
            with self._cond:
                batches = sorted(self._unacked.items())
            for seq, (items, _rows) in batches:
                self._send_batch(seq, items)


if __name__ == "__main__":
    from ingestion_pipelines.sidecar.writer_child import child_main

    sys.exit(child_main(int(sys.argv[1])))
