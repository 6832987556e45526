"""Logging for every process: loguru configured once, secrets redacted before any sink, and
every line also written to `execution_log` by a background batch writer.

The writer's promises:
- the caller never waits on the database: a log call appends to an in-memory queue;
- a full queue never blocks: the line is dropped, counted (`dropped`), and a warning row saying how
  many were dropped is written when the queue drains;
- a database outage loses nothing: the pending batch is retried with backoff while new lines wait in
  the (bounded) queue;
- a clean exit flushes everything; what cannot reach the database by then is spilled to a local
  file and written by the next writer that starts.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loguru import logger

from ingestion_pipelines.core.redaction import redact
from ingestion_pipelines.core.settings import get_settings, local_data_dir

_STDERR_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <7}</level> | "
    "{extra[worker_id]} | {message}"
)
_configured_lock = threading.Lock()
_writer: ExecutionLogWriter | None = None
_process_name = "ingest"


def _patch(record: dict[str, Any]) -> None:
    record["message"] = redact(record["message"])
    record["extra"].setdefault("worker_id", "-")


class BufferedStderr:
    """Writes log records to stderr from a background thread, formatted there.

    The caller only appends the record; warnings and errors are written at once, so nothing
    important sits in the buffer when a process dies.
    """

    def __init__(self, interval_s: float = 0.1, stream=None):
        self.interval_s = interval_s
        self.stream = stream
        self._records: deque[tuple] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stderr-flusher", daemon=True)
        self._thread.start()

    def append(self, entry: tuple, level_no: int) -> None:
        """Queue one log line; a warning or worse is written at once."""
        self._records.append(entry)
        if level_no >= 30:
            self.flush()

    @staticmethod
    def format(entry: tuple) -> str:
        """One log line as text: time, level, worker, message."""
        logged_at, worker, level, message, _run_id = entry
        return f"{logged_at.isoformat(' ', 'milliseconds')[:23]} | {level: <7} | {worker or '-'} | {message}\n"

    def flush(self) -> None:
        """Write every queued line to stderr now."""
        with self._lock:
            records = self._records
            if not records:
                return
            lines = [self.format(records.popleft()) for _ in range(len(records))]
            stream = self.stream or sys.stderr
            try:
                stream.write("".join(lines))
                stream.flush()
            except (OSError, ValueError):
                pass  # stderr closed: the lines are in execution_log

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()


_stderr: BufferedStderr | None = None


_COLUMNS = ("logged_at", "worker_id", "level", "message", "run_id", "process")


class ExecutionLogWriter:
    """Writes log records to `execution_log` from a background thread, in batches.

    Rows are plain tuples written with the driver's `executemany`: the writer shares the GIL with
    the code that logs, so its per-row cost is the caller's cost too.
    """

    def __init__(
        self,
        database_url: str,
        *,
        capacity: int = 250_000,
        batch_size: int = 5_000,
        flush_interval_s: float = 0.5,
        max_defer_s: float = 2.0,
        spill_path: Path | None = None,
    ):
        self.database_url = database_url
        self.capacity = capacity
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_defer_s = max_defer_s
        self.spill_path = spill_path or local_data_dir() / "execution_log.spill.jsonl"
        self.dropped = 0
        self.written = 0
        self.failures = 0
        self._queue: deque[tuple] = deque()
        self._reported_drops = 0
        self._stop = threading.Event()
        self._busy = True  # until the spill of an earlier process is replayed
        self._sql: str | None = None
        self._thread = threading.Thread(target=self._run, name="execution-log-writer", daemon=True)
        self._thread.start()

    def enqueue(self, entry: tuple) -> None:
        """Queue (logged_at, worker_id, level, message, run_id). Runs on the caller's thread."""
        if len(self._queue) >= self.capacity:
            self.dropped += 1
            return
        self._queue.append(entry)

    @property
    def pending(self) -> int:
        """Lines queued, not yet written."""
        return len(self._queue)

    def _take(self) -> list[tuple]:
        queue = self._queue
        batch = [queue.popleft() for _ in range(min(len(queue), self.batch_size))]
        if self.dropped > self._reported_drops:
            lost = self.dropped - self._reported_drops
            self._reported_drops = self.dropped
            message = (
                f"{lost} log lines dropped: execution_log queue full (capacity {self.capacity})"
            )
            batch.append((datetime.now(UTC), None, "WARNING", message, None))
        return batch

    def _insert(self, batch: list[tuple]) -> None:
        from ingestion_pipelines.storage.engines import ensure_schema

        engine = ensure_schema(self.database_url)
        sqlite = engine.dialect.name == "sqlite"
        if self._sql is None:
            marks = ", ".join(["?" if sqlite else "%s"] * len(_COLUMNS))
            self._sql = f"INSERT INTO execution_log ({', '.join(_COLUMNS)}) VALUES ({marks})"
        rows = []
        process = _process_name
        for logged_at, worker, level, message, run_id in batch:
            when = logged_at.astimezone(UTC).replace(tzinfo=None)
            rows.append(
                (when.isoformat(" ") if sqlite else when, worker, level, message, run_id, process)
            )
        with engine.begin() as conn:
            conn.exec_driver_sql(self._sql, rows)

    def _write_with_retry(self, batch: list[tuple], deadline: float | None) -> bool:
        delay = 0.2
        while True:
            try:
                self._insert(batch)
                self.written += len(batch)
                return True
            except Exception as exc:  # noqa: BLE001 - any database error: wait and retry
                self.failures += 1
                if self.failures in (1, 10) or self.failures % 100 == 0:
                    print(
                        f"execution_log writer: database unavailable, retrying "
                        f"({len(batch) + self.pending} lines waiting): {redact(str(exc))[:300]}",
                        file=sys.stderr,
                    )
                if deadline is not None and time.monotonic() + delay > deadline:
                    return False
                if self._stop.is_set() and deadline is None:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _run(self) -> None:
        self._replay_spill()
        self._busy = False
        seen = 0  # queue length at the last look
        burst_since: float | None = None
        while not self._stop.is_set():
            if len(self._queue) < self.batch_size:
                self._stop.wait(self.flush_interval_s)
            pending = len(self._queue)
            if not pending and self.dropped == self._reported_drops:
                seen, burst_since = 0, None
                continue
            # The writer shares the GIL with the threads that log: while they log in a burst
            # (more than a batch per interval), writing would slow every call, so it waits for
            # the burst to end, at most `max_defer_s` and never past half the queue.
            if pending - seen > self.batch_size and pending < self.capacity // 2:
                burst_since = burst_since or time.monotonic()
                if time.monotonic() - burst_since < self.max_defer_s:
                    seen = pending
                    self._stop.wait(self.flush_interval_s)
                    continue
            burst_since = None
            self._busy = True
            while self._queue and not self._stop.is_set():
                batch = self._take()
                if not self._write_with_retry(batch, None):
                    self._queue.extendleft(reversed(batch))
                    break
            seen = len(self._queue)
            self._busy = False

    def _replay_spill(self) -> None:
        path = self.spill_path
        if not path.exists():
            return
        claimed = path.with_suffix(f".{os.getpid()}.replaying")
        try:
            path.rename(claimed)
        except OSError:
            return
        rows = []
        for line in claimed.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            row[0] = datetime.fromisoformat(row[0])
            rows.append(tuple(row))
        for start in range(0, len(rows), self.batch_size):
            if not self._write_with_retry(rows[start : start + self.batch_size], None):
                self._spill(rows[start:])
                break
        claimed.unlink(missing_ok=True)

    def _spill(self, rows: list[tuple]) -> None:
        self.spill_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spill_path.open("a", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps([row[0].isoformat(), *row[1:]], default=str) + "\n")

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued line is written (True) or the timeout passes (False)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._stop.is_set():
                return not self._queue
            if not self._queue and not self._busy and self.dropped == self._reported_drops:
                return True
            time.sleep(0.01)
        return False

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the thread and write what is left; what the database refuses by the deadline is
        spilled to a local file that the next writer replays."""
        deadline = time.monotonic() + timeout_s
        self._stop.set()
        self._thread.join(max(0.1, deadline - time.monotonic()))
        leftover = self._take()
        if leftover and not self._write_with_retry(leftover, deadline):
            self._spill(leftover + [self._queue.popleft() for _ in range(len(self._queue))])
            return
        while self._queue:
            batch = self._take()
            if not self._write_with_retry(batch, deadline):
                self._spill(batch + [self._queue.popleft() for _ in range(len(self._queue))])
                return


def setup_logging(
    process: str = "ingest",
    *,
    database_url: str | None = None,
    to_database: bool = True,
    level: str | None = None,
    capacity: int = 250_000,
) -> ExecutionLogWriter | None:
    """Configure loguru for this process (stderr + `execution_log`). Safe to call again."""
    global _writer, _process_name
    with _configured_lock:
        _process_name = process
        level = level or os.environ.get("INGEST_LOG_LEVEL", "INFO")
        if _writer is not None:
            _writer.close()
            _writer = None
        logger.remove()
        global _stderr
        if _stderr is None:
            _stderr = BufferedStderr()
        stderr = _stderr
        if to_database:
            url = database_url or get_settings().database_url
            _writer = ExecutionLogWriter(url, capacity=capacity)

        # One minimal sink hands each record to stderr and execution_log; both format it on
        # their own thread, so the caller pays for neither (loguru formats per sink otherwise).
        # Entries are flat tuples of atomic values: the garbage collector stops tracking them,
        # where queued record dicts made every collection slower as the queue grew.
        def dispatch(message) -> None:
            record = message.record
            text = record["message"]
            if record["exception"] is not None:
                text = redact(
                    f"{text}\n{''.join(traceback.format_exception(*record['exception']))}"
                )
            worker = record["extra"].get("worker_id")
            entry = (
                record["time"],
                None if worker == "-" else worker,
                record["level"].name,
                text,
                record["extra"].get("run_id"),
            )
            stderr.append(entry, record["level"].no)
            writer = _writer  # None once shutdown_logging() has run
            if writer is not None:
                writer.enqueue(entry)

        logger.configure(patcher=_patch, extra={"worker_id": "-"})
        logger.add(dispatch, level=level, format="{message}", backtrace=False, diagnose=False)
        return _writer


def ensure_logging(process: str, **kwargs: Any) -> None:
    """Configure logging unless this process already did (CLI, runs, servers)."""
    if _stderr is None or (kwargs.get("to_database", True) and _writer is None):
        setup_logging(process, **kwargs)


def shutdown_logging(timeout_s: float = 10.0) -> None:
    """Flush and stop the `execution_log` writer (registered at exit)."""
    global _writer
    with _configured_lock:
        if _stderr is not None:
            _stderr.flush()
        if _writer is not None:
            _writer.close(timeout_s)
            _writer = None


atexit.register(shutdown_logging)


@contextmanager
def run_logging(context, worker_id: str) -> Iterator[Any]:
    """Inside a Dagster run: tag lines with the run and worker, and copy them to `context.log`."""
    ensure_logging("dagster-run")
    run_id = context.run_id

    def to_dagster(message) -> None:
        record = message.record
        method = {
            "TRACE": "debug",
            "DEBUG": "debug",
            "SUCCESS": "info",
            "WARNING": "warning",
            "ERROR": "error",
            "CRITICAL": "critical",
        }.get(record["level"].name, "info")
        getattr(context.log, method)(record["message"])

    sink_id = logger.add(
        to_dagster,
        level="INFO",
        format="{message}",
        filter=lambda r: r["extra"].get("run_id") == run_id,
        diagnose=False,
    )
    try:
        with logger.contextualize(run_id=run_id, worker_id=worker_id):
            yield logger.bind(run_id=run_id, worker_id=worker_id)
    finally:
        logger.remove(sink_id)
