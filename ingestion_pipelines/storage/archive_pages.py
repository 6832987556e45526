"""One page of a table read with the driver's cursor straight into Arrow columns.

The archive's read is its cost: building a Python row object per row (SQLAlchemy's `Row`, its
result processors) and, with PyMySQL, parsing each DECIMAL and DATETIME into Python objects,
cost more than the rest of the archive. So a page is executed through SQLAlchemy (compiled,
bound, on a pooled connection) but fetched from the DBAPI cursor as plain tuples, and with
PyMySQL the exact types arrive as the server's text ("64123.123456789012345678",
"2026-05-01 03:00:07.123456"): each column then becomes one Arrow array and is cast in C++
(text to `decimal128(38, 18)` refuses any value that would lose a digit, never rounds).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import Connection


class PageError(ValueError):
    """A column's values could not be put into its archive type exactly."""


# PyMySQL field types read as the server's text instead of Python objects (FIELD_TYPE codes:
# DECIMAL, TIMESTAMP, DATE, DATETIME, NEWDECIMAL)
_TEXT_FIELD_TYPES = (0, 7, 10, 12, 246)


@contextlib.contextmanager
def _exact_types_as_text(conn: Connection) -> Iterator[None]:
    """With PyMySQL: decimals and times come back as the server's text on this connection while
    the block runs (their Python parsing is most of PyMySQL's cost per row); other drivers as is."""
    dbapi = conn.connection.dbapi_connection
    decoders = getattr(dbapi, "decoders", None)
    if conn.dialect.driver != "pymysql" or not isinstance(decoders, dict):
        yield
        return
    from pymysql.converters import through

    dbapi.decoders = {**decoders, **dict.fromkeys(_TEXT_FIELD_TYPES, through)}
    try:
        yield
    finally:
        dbapi.decoders = decoders


def read_page(conn: Connection, query, schema: pa.Schema) -> pa.RecordBatch:
    """Execute `query` (its columns in `schema`'s order) and return its rows as one batch."""
    with _exact_types_as_text(conn):
        result = conn.execute(query)
        try:
            rows = result.cursor.fetchall()
        finally:
            result.close()
    return tuples_to_batch(schema, rows)


def tuples_to_batch(schema: pa.Schema, rows: Sequence[tuple]) -> pa.RecordBatch:
    """Driver tuples as a batch of `schema`; a value that does not fit exactly raises
    `PageError` naming its column."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = []
    for field, values in zip(schema, columns, strict=True):
        try:
            arrays.append(column_array(field.type, values))
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise PageError(f"column {field.name}: {exc}") from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def column_array(kind: pa.DataType, values: Sequence[Any]) -> pa.Array:
    """One column's driver values as an array of `kind`: text cast in C++ to decimals, times and
    dates; integers to booleans (MariaDB and SQLite hand booleans back as 0 and 1)."""
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, str) and not pa.types.is_string(kind):
        text = pa.array(values, pa.string())
        if pa.types.is_timestamp(kind) and kind.tz is not None:
            # stored naive UTC: parsed as wall time, then labelled UTC (same instants)
            return pc.cast(text, pa.timestamp(kind.unit)).cast(kind)
        return pc.cast(text, kind)
    if isinstance(sample, int) and pa.types.is_boolean(kind):
        return pa.array(values, pa.int64()).cast(kind)
    return pa.array(values, kind)
