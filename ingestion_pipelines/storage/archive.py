"""Parquet archives of table rows: one folder per table and UTC day, on a local folder or any
fsspec URL (`INGEST_ARCHIVE_URL`, default `<INGEST_LOCAL_DIR>/archive`).

    <archive>/<table>/day=YYYY-MM-DD/part-<stamp>-<id>.parquet

Columns keep their exact values: exact decimals as `decimal128(38, 18)` (the columns'
DECIMAL(38, 18)), UTC instants as `timestamp[us, UTC]`, JSON columns as their canonical JSON
text. A file is written under a temporary name, read back and compared (row count and a SHA-256
of the key columns, in order) and only then renamed into place; `retention` deletes rows only
from a file that passed. `restore_day` puts a day back through `storage.upsert` (idempotent).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    select,
    type_coerce,
)
from sqlalchemy.engine import Engine

from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.core.redaction import redact_url
from ingestion_pipelines.storage.types import (
    ExactDecimal,
    JsonDocument,
    JsonValue,
    LongText,
    UtcDateTime,
)
from ingestion_pipelines.storage.upsert import UpsertResult, upsert

DECIMAL = pa.decimal128(38, 18)
TIMESTAMP = pa.timestamp("us", tz="UTC")
KEY_SEPARATOR = "\x1f"
RESTORE_BATCH_ROWS = 5_000


class ArchiveError(IngestError):
    """An archive could not be written, verified or read: nothing was deleted."""


def default_archive_url() -> str:
    """`INGEST_ARCHIVE_URL`, else the `archive` folder of the local data folder."""
    from ingestion_pipelines.core.settings import get_settings, local_data_dir

    return get_settings().archive_url or str(local_data_dir() / "archive")


def arrow_type(column) -> tuple[pa.DataType, bool]:
    """(Arrow type, is JSON text) of a table column; an unknown type is refused."""
    kind = column.type
    if isinstance(kind, (JsonDocument, JsonValue)):
        return pa.string(), True
    if isinstance(kind, ExactDecimal | Numeric):
        return DECIMAL, False
    if isinstance(kind, UtcDateTime):
        return TIMESTAMP, False
    if isinstance(kind, BigInteger | Integer):
        return pa.int64(), False
    if isinstance(kind, Boolean):
        return pa.bool_(), False
    if isinstance(kind, Date):
        return pa.date32(), False
    if isinstance(kind, String | Text | LongText):
        return pa.string(), False
    raise ArchiveError(f"{column.table.name}.{column.name}: no archive type for {kind!r}")


def arrow_schema(table: Table) -> pa.Schema:
    """The Parquet schema of `table` (JSON columns tagged in their field metadata)."""
    fields = []
    for column in table.columns:
        kind, is_json = arrow_type(column)
        meta = {b"json": b"1"} if is_json else None
        fields.append(pa.field(column.name, kind, nullable=column.nullable, metadata=meta))
    return pa.schema(fields, metadata={b"table": table.name.encode()})


def _json_columns(schema: pa.Schema) -> set[str]:
    return {f.name for f in schema if f.metadata and f.metadata.get(b"json") == b"1"}


def raw_select(table: Table):
    """SELECT of every column of `table`, in its order, typed as stored: UTC times as the stored
    naive UTC values, JSON columns as their stored text (already canonical JSON)."""
    columns = []
    for column in table.columns:
        if isinstance(column.type, (JsonDocument, JsonValue)):
            columns.append(type_coerce(column, Text()).label(column.name))
        elif isinstance(column.type, UtcDateTime):
            columns.append(type_coerce(column, DateTime()).label(column.name))
        else:
            columns.append(column)
    return select(*columns)


class KeyDigest:
    """SHA-256 of the key columns of consecutive batches (row after row, chunking-independent)."""

    def __init__(self, key_columns: Iterable[str]):
        self.key_columns = list(key_columns)
        self.rows = 0
        self._hash = hashlib.sha256()

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Add the keys of `batch`, each row's key columns as text, each row terminated."""
        if batch.num_rows == 0:
            return
        parts = [pc.cast(batch.column(name), pa.string()) for name in self.key_columns]
        parts.append(pa.array([""] * batch.num_rows, pa.string()))  # each row ends with a sep
        joined = pc.binary_join_element_wise(*parts, KEY_SEPARATOR)
        if isinstance(joined, pa.ChunkedArray):
            joined = joined.combine_chunks()
        joined = pa.concat_arrays([joined])  # offset 0, offsets from 0: the data buffer as is
        size = pc.sum(pc.binary_length(joined)).as_py() or 0
        self._hash.update(memoryview(joined.buffers()[2])[:size])
        self.rows += batch.num_rows

    def hexdigest(self) -> str:
        """The checksum of every key added so far."""
        return self._hash.hexdigest()


@dataclass(frozen=True)
class ArchivedFile:
    """A verified archive file: where it is, how many rows, the checksum of their keys."""

    url: str
    rows: int
    key_sha256: str


def archive_fs(url: str | None = None) -> tuple[Any, str]:
    """(fsspec filesystem, root path) of an archive URL or folder."""
    fs, root = fsspec.core.url_to_fs(url or default_archive_url())
    return fs, root.rstrip("/")


def day_folder(root: str, table: str, day: date) -> str:
    """The folder of one table-day under the archive root."""
    return f"{root}/{table}/day={day.isoformat()}"


class DayWriter:
    """Writes one table-day's rows to a temporary Parquet file, then verifies and publishes it."""

    def __init__(self, fs, root: str, table: Table, day: date, key_columns: Iterable[str]):
        self.fs = fs
        self.schema = arrow_schema(table)
        self.folder = day_folder(root, table.name, day)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self.final = f"{self.folder}/part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
        self.temporary = f"{self.folder}/.{self.final.rsplit('/', 1)[1]}.tmp"
        self.digest = KeyDigest(key_columns)
        self._stream = None
        self._writer = None

    def write(self, batch: pa.RecordBatch) -> None:
        """Append a batch of `self.schema` (a page read by `archive_pages.read_page`)."""
        if self._writer is None:
            self.fs.makedirs(self.folder, exist_ok=True)
            self._stream = self.fs.open(self.temporary, "wb")
            self._writer = pq.ParquetWriter(self._stream, self.schema, compression="zstd")
        self._writer.write_batch(batch)
        self.digest.update(batch)

    def publish(self) -> ArchivedFile:
        """Close, read the file back, compare count and key checksum, rename it into place."""
        self._close()
        rows, digest = verify_file(self.fs, self.temporary, self.digest.key_columns)
        if rows != self.digest.rows or digest != self.digest.hexdigest():
            self.discard()
            raise ArchiveError(
                f"{self.final}: read back {rows} rows (key sha256 {digest[:12]}), wrote "
                f"{self.digest.rows} (key sha256 {self.digest.hexdigest()[:12]}): not published"
            )
        self.fs.mv(self.temporary, self.final)
        return ArchivedFile(self.final, rows, digest)

    def discard(self) -> None:
        """Drop the temporary file (a failed write or verification leaves nothing behind)."""
        with contextlib.suppress(Exception):  # discarding after a failure being reported
            self._close()
        if self.fs.exists(self.temporary):
            self.fs.rm(self.temporary)

    def _close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.close()


def verify_file(fs, path: str, key_columns: list[str]) -> tuple[int, str]:
    """(rows, key SHA-256) of an archive file as read back from storage."""
    digest = KeyDigest(key_columns)
    try:
        with fs.open(path, "rb") as stream:
            parquet = pq.ParquetFile(stream)
            for batch in parquet.iter_batches(batch_size=65_536, columns=key_columns):
                digest.update(batch)
    except (OSError, pa.ArrowException) as exc:
        raise ArchiveError(f"{path}: cannot be read back: {exc}") from None
    return digest.rows, digest.hexdigest()


def iter_key_batches(
    fs, path: str, key_columns: list[str], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """The keys held by an archive file (in the order written), `batch_rows` at a time."""
    with fs.open(path, "rb") as stream:
        parquet = pq.ParquetFile(stream)
        yield from parquet.iter_batches(batch_size=batch_rows, columns=key_columns)


def day_files(fs, root: str, table: str, day: date) -> list[str]:
    """The published archive files of one table-day, oldest first."""
    folder = day_folder(root, table, day)
    if not fs.exists(folder):
        return []
    names = [p for p in fs.ls(folder, detail=False) if p.rsplit("/", 1)[-1].endswith(".parquet")]
    return sorted(n for n in names if not n.rsplit("/", 1)[-1].startswith("."))


def _python_rows(batch: pa.RecordBatch, json_columns: set[str]) -> list[dict[str, Any]]:
    rows = batch.to_pylist()
    for row in rows:
        for name in json_columns:
            if row.get(name) is not None:
                row[name] = json.loads(row[name])
    return rows


def read_day(fs, root: str, table: Table, day: date) -> Iterator[list[dict[str, Any]]]:
    """The archived rows of one table-day, in batches of dicts ready for `upsert`."""
    for path in day_files(fs, root, table.name, day):
        with fs.open(path, "rb") as stream:
            parquet = pq.ParquetFile(stream)
            json_columns = _json_columns(parquet.schema_arrow)
            for batch in parquet.iter_batches(batch_size=RESTORE_BATCH_ROWS):
                yield _python_rows(batch, json_columns)


def restore_day(
    engine: Engine, table: Table, day: date, archive_url: str | None = None
) -> UpsertResult:
    """Put an archived table-day back (upsert by key: running it twice changes nothing)."""
    fs, root = archive_fs(archive_url)
    if not day_files(fs, root, table.name, day):
        where = redact_url(archive_url or default_archive_url())
        raise ArchiveError(f"no archive of {table.name} for {day} under {where}")
    total = UpsertResult()
    for rows in read_day(fs, root, table, day):
        total = total + upsert(engine, table, rows, on_conflict="update")
    return total
