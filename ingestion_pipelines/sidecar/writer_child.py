"""The writer process's side (`python -m ingestion_pipelines.sidecar.writer_process` runs
`child_main`): a `committer.BatchCommitter` fed from the sidecar's socket, in one thread, so every
database, spool, poison, fencing, bar and publish step is the in-process writer's. Also the
codec of the batches that cross the socket (the spool's JSON encoding)."""

from __future__ import annotations

import functools
import pickle
import signal
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from loguru import logger

from ingestion_pipelines.sidecar import spool as spool_codec
from ingestion_pipelines.sidecar.committer import BatchCommitter, Item
from ingestion_pipelines.sidecar.spool import Spool
from ingestion_pipelines.sidecar.startup import freeze_startup_objects

# The most rows the child takes into one transaction from the batches waiting. A child that falls
# behind (a burst) writes larger transactions, which cost the database less per row (one commit,
# one fencing check, one bar upsert per symbol-minute for all of them), so it catches up; a quiet
# feed's batch is still committed as soon as it arrives. (Measured on a burst of 100,000 trades:
# 2,000 rows a transaction sustained 22.8-24.9 k msg/s, 10,000 rows 25.6-31.8 k.)
TRANSACTION_MAX_ROWS = 10_000


def grouped(items: list[Item]) -> list[Item]:
    """The items merged per (feed, table, on_conflict), rows in their order (as `Writer` groups
    them for a transaction anyway)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for feed_id, table, on_conflict, rows in items:
        group = groups.get((feed_id, table, on_conflict))
        if group is None:
            groups[(feed_id, table, on_conflict)] = list(rows)
        else:
            group.extend(rows)
    return [(f, t, c, rows) for (f, t, c), rows in groups.items()]


def encoded(item: Item) -> tuple[str, bytes, bool]:
    """(feed, rows as bytes, whether pickled): the spool's JSON record (several times cheaper to
    make and read than pickling decimals and datetimes), pickle for a value JSON cannot carry."""
    feed_id, table, on_conflict, rows = item
    try:
        return feed_id, spool_codec.encode(table, on_conflict, rows), False
    except TypeError:
        return feed_id, pickle.dumps((table, on_conflict, rows), pickle.HIGHEST_PROTOCOL), True


def decoded(part: tuple[str, bytes, bool]) -> Item:
    """The item `encoded` made."""
    feed_id, data, pickled = part
    table, on_conflict, rows = pickle.loads(data) if pickled else spool_codec.decode(data)
    return feed_id, table, on_conflict, rows


# ---- the child process ------------------------------------------------------------------------
def _spool(folder: Path, max_bytes: int, feed_id: str) -> Spool:
    return Spool(folder / feed_id, max_bytes)


class _Child:
    """The writer process: a `BatchCommitter` fed from the parent's socket, in this one thread."""

    def __init__(self, conn: Connection, config: dict[str, Any]):
        from ingestion_pipelines.core.redis_client import get_redis

        self.conn = conn
        self.ownership: dict[str, tuple[bool, int | None]] = {}
        self.want_commits = config["want_commits"]
        self.commits: list[tuple[str, str, float, list[int]]] = []
        self.positions: dict[int, int] = {}  # id(row) -> its place in the unacknowledged rows
        self.pending_seqs: list[int] = []
        self.replays: list[tuple] = []
        self.done = False
        redis_url = config["redis_url"]
        options = dict(config["writer"])
        self.batch_rows = options.pop("batch_rows", TRANSACTION_MAX_ROWS)
        self.committer = BatchCommitter(
            config["database_url"],
            spools=functools.partial(_spool, Path(config["spool_dir"]), config["spool_max_bytes"]),
            publisher=get_redis(redis_url, feature="live ticks") if redis_url else None,
            guard=self._owns,
            fence=self._fence,
            on_commit=self._committed if self.want_commits else None,
            **options,
        )
        self.committer.metrics.update(config["metrics"])
        self.committer.replay_first(config["feeds"])

    def _owns(self, feed_id: str) -> bool:
        return self.ownership.get(feed_id, (True, None))[0]

    def _fence(self, feed_id: str) -> int | None:
        return self.ownership.get(feed_id, (True, None))[1]

    def _committed(self, feed_id: str, table: str, rows: list[dict[str, Any]], at: float):
        positions = self.positions
        places = [p for p in (positions.get(id(row)) for row in rows) if p is not None]
        if places:
            self.commits.append((feed_id, table, at, places))

    def run(self) -> int:
        """Write what the parent sends until it says stop or goes away."""
        committer = self.committer
        try:
            committer.engine()  # connected (and the schema checked) before the feeds read
        except Exception as exc:  # noqa: BLE001 - database down: the first batch spools
            logger.warning("database unavailable at the writer's start: {}", exc)
        freeze_startup_objects()
        self._tell(("ready",))
        while not self.done:
            if committer.held:  # database down and spool full: take nothing more for now
                time.sleep(committer.retry_s)
                self._write([])
            elif committer.down and not self.conn.poll(committer.retry_s):
                self._write([])  # a recovery attempt
            else:
                self._write(self._receive())
            self._replay()
        if committer.held:
            self._write([])
        committer.close()
        self._tell(("stopped", committer.metrics, committer.down))
        return 0 if not committer.held else 1

    def _receive(self) -> list[Item]:
        """The next batches: one (waiting for it), then every one already there, up to
        `TRANSACTION_MAX_ROWS` rows."""
        items: list[Item] = []
        rows = 0
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):  # the sidecar is gone: write what we have, then end
                self.done = True
                return items
            kind = message[0]
            if kind == "batch":
                _kind, seq, ownership, parts = message
                batch = [decoded(part) for part in parts]
                self.ownership.update(ownership)
                self.pending_seqs.append(seq)
                if self.want_commits:
                    place = len(self.positions)
                    for item in batch:
                        for row in item[3]:
                            self.positions[id(row)] = place
                            place += 1
                items.extend(batch)
                rows += sum(len(item[3]) for item in batch)
            elif kind == "replay":
                self.replays.append(message)
            elif kind == "stop":
                self.done = True
                return items
            if rows >= max(TRANSACTION_MAX_ROWS, self.batch_rows) or not self.conn.poll(0):
                return items

    def _write(self, items: list[Item]) -> None:
        committer = self.committer
        was_down = committer.down
        if committer.write_batch(items) and self.pending_seqs:
            self._tell(("ack", self.pending_seqs, committer.metrics, committer.down, self.commits))
            self.pending_seqs, self.commits = [], []
            self.positions.clear()
        elif committer.down != was_down or not items:
            self._tell(("state", committer.metrics, committer.down))

    def _replay(self) -> None:
        while self.replays:
            _kind, request_id, feed_id = self.replays.pop(0)
            try:
                total, error = self.committer.replay_spool(feed_id), None
            except Exception as exc:  # noqa: BLE001 - told to the caller, who decides
                total, error = None, (str(exc).splitlines() or [type(exc).__name__])[0][:300]
            self._tell(("replayed", request_id, total, error))

    def _tell(self, message: tuple) -> None:
        try:
            self.conn.send(message)
        except OSError:  # the sidecar is gone
            self.done = True


def child_main(fd: int) -> int:
    """The writer process's entry point: its settings come first on the socket `fd`."""
    from ingestion_pipelines.core.redaction import register_secret

    # Ctrl-C in a terminal signals the whole process group: the sidecar decides when its writer
    # ends (after the last flush), and the child also ends when the sidecar's socket closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(fd)
    config = conn.recv()
    for secret in config["secrets"]:
        register_secret(secret)
    if config["logging"]:
        from ingestion_pipelines.storage.logs import setup_logging

        setup_logging(
            "sidecar-writer",
            database_url=config["database_url"],
            to_database=config["log_to_database"],
        )
    return _Child(conn, config).run()
