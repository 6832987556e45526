"""A write-ahead spool on local disk for batches the database could not take.

One append-only file per feed (`<local data>/spool/<feed>/spool.log`) of framed records::

    [4 bytes length, big endian][4 bytes CRC-32 of the payload][payload: orjson]

Each record is one batch `{"t": table, "c": on_conflict, "r": rows, "a": spooled at (epoch s)}`; `append` fsyncs before it
returns, so a batch the writer moved to the spool survives kill -9. Reading stops at the first
record whose length or CRC does not check out (a torn write after kill -9): the rest of the file is
reported and skipped. The file is bounded (`max_bytes`): `append` raises `SpoolFull`, a clear
error, rather than letting the disk or memory grow without end.

Replaying renames the file aside first (`spool.<n>.replaying`), so appends during a replay go to a
new file; a replay file is deleted only after every one of its batches was committed. Batches are
written with idempotent upserts, so a replay interrupted half-way is simply done again.

`stats()` gives the spool's size and the time of its oldest record (the heartbeat check and
`ingest health` alert on an old spool: the database has been refusing batches for that long).
"""

from __future__ import annotations

import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from loguru import logger

from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.storage.tables import CONTROL_TABLES, DATA_TABLES
from ingestion_pipelines.storage.types import ExactDecimal, UtcDateTime

_HEADER = struct.Struct(">II")
_MAX_RECORD = 256 * 1024 * 1024
DEFAULT_MAX_BYTES = 1024**3


class SpoolFull(IngestError, RuntimeError):
    """The spool reached its size limit: the database has been down too long for the disk budget."""

    transient = True  # the spool drains, and frees its space, once the database is back


def _converters(table_name: str) -> dict[str, type]:
    table = DATA_TABLES[table_name] if table_name in DATA_TABLES else CONTROL_TABLES[table_name]
    out: dict[str, type] = {}
    for column in table.c:
        if isinstance(column.type, ExactDecimal):
            out[column.name] = Decimal
        elif isinstance(column.type, UtcDateTime):
            out[column.name] = datetime
    return out


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot spool a {type(value).__name__}")


def encode(table: str, on_conflict: str, rows: list[dict[str, Any]]) -> bytes:
    """One spool record's payload (JSON; decimals as text)."""
    record = {"t": table, "c": on_conflict, "r": rows, "a": round(time.time(), 3)}
    return orjson.dumps(record, default=_default)


def decode(payload: bytes) -> tuple[str, str, list[dict[str, Any]]]:
    """(table, on_conflict, rows) from a payload, decimals and datetimes restored."""
    record = orjson.loads(payload)
    table = record["t"]
    convert = _converters(table)
    rows = record["r"]
    for row in rows:
        for name, kind in convert.items():
            value = row.get(name)
            if value is None:
                continue
            row[name] = Decimal(value) if kind is Decimal else datetime.fromisoformat(value)
    return table, record["c"], rows


class Spool:
    """The disk spool of one feed. Thread-safe; `append` is durable when it returns."""

    def __init__(self, folder: Path, max_bytes: int = DEFAULT_MAX_BYTES):
        self.folder = folder
        self.max_bytes = max_bytes
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "spool.log"
        self._lock = threading.Lock()
        self._fh = None
        self._oldest: tuple[tuple[str, int], datetime] | None = None

    def size(self) -> int:
        """Bytes on disk in the spool's files."""
        total = 0
        for path in self.folder.glob("spool*"):
            try:
                total += path.stat().st_size
            except FileNotFoundError:  # replayed meanwhile
                continue
        return total

    def _files(self) -> list[Path]:
        """Every spool file, oldest first (replay files by number, then the live file)."""
        claimed = sorted(
            self.folder.glob("spool.*.replaying"), key=lambda p: int(p.name.split(".")[1])
        )
        return [*claimed, self.path]

    def oldest_at(self) -> datetime | None:
        """When the oldest record still waiting was spooled (None: the spool is empty)."""
        for path in self._files():
            try:
                stat = path.stat()
                if not stat.st_size:
                    continue
                cache_key = (str(path), stat.st_ino)
                if self._oldest is None or self._oldest[0] != cache_key:
                    self._oldest = (cache_key, _first_record_time(path, stat.st_mtime))
                return self._oldest[1]
            except FileNotFoundError:  # replayed meanwhile
                continue
        return None

    def stats(self) -> dict[str, Any]:
        """`spool_bytes` and `spool_oldest_at` (ISO, or None when empty), for the feed's state."""
        oldest = self.oldest_at()
        return {
            "spool_bytes": self.size() if oldest is not None else 0,
            "spool_oldest_at": oldest.isoformat() if oldest is not None else None,
        }

    def pending(self) -> bool:
        """Whether any record waits to be replayed."""
        return any(p.stat().st_size > 0 for p in self.folder.glob("spool*") if p.is_file())

    def append(self, table: str, on_conflict: str, rows: list[dict[str, Any]]) -> int:
        """Write one record durably (fsync); the bytes it took on disk."""
        payload = encode(table, on_conflict, rows)
        record = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        with self._lock:
            used = self.size()
            if used + len(record) > self.max_bytes:
                raise SpoolFull(
                    f"spool {self.path} is full ({used} of {self.max_bytes} bytes): the database "
                    f"has been unreachable too long; {len(rows)} {table} rows cannot be kept. "
                    "Raise `spool_max_bytes` or bring the database back."
                )
            if self._fh is None:
                self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open between appends
            self._fh.write(record)
            self._fh.flush()
            os.fsync(self._fh.fileno())
        return len(record)

    def _claim(self) -> list[Path]:
        """Move the live file aside (appends go to a new one); every file waiting for replay."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            if self.path.exists() and self.path.stat().st_size:
                numbers = [int(p.name.split(".")[1]) for p in self.folder.glob("spool.*.replaying")]
                self.path.rename(self.folder / f"spool.{max(numbers, default=0) + 1}.replaying")
            return sorted(
                self.folder.glob("spool.*.replaying"), key=lambda p: int(p.name.split(".")[1])
            )

    def replay_files(self) -> list[Path]:
        """Claim the files to replay, oldest first."""
        return self._claim()

    @staticmethod
    def records(path: Path) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
        """The intact records of `path`, in order; a torn or corrupt tail is logged and skipped."""
        with open(path, "rb") as fh:
            data = fh.read()
        offset = 0
        while offset < len(data):
            if offset + _HEADER.size > len(data):
                _torn(path, offset, len(data), "header cut short")
                return
            length, crc = _HEADER.unpack_from(data, offset)
            start = offset + _HEADER.size
            payload = data[start : start + length]
            if length > _MAX_RECORD or len(payload) != length or zlib.crc32(payload) != crc:
                _torn(path, offset, len(data), "length or CRC mismatch")
                return
            yield decode(payload)
            offset = start + length

    def close(self) -> None:
        """Close the open spool file."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def _first_record_time(path: Path, fallback: float) -> datetime:
    """The spool time of the first record of `path` (its mtime when the record has none)."""
    with open(path, "rb") as fh:
        header = fh.read(_HEADER.size)
        if len(header) == _HEADER.size:
            length, _crc = _HEADER.unpack(header)
            if length <= _MAX_RECORD:
                try:
                    at = orjson.loads(fh.read(length)).get("a")
                except (orjson.JSONDecodeError, AttributeError):
                    at = None
                if isinstance(at, (int, float)):
                    return datetime.fromtimestamp(at, UTC)
    return datetime.fromtimestamp(fallback, UTC)


def _torn(path: Path, offset: int, size: int, why: str) -> None:
    logger.warning(
        "spool {}: {} at byte {} of {}; the last {} bytes (a write cut by a crash) are skipped",
        path,
        why,
        offset,
        size,
        size - offset,
    )
