"""Archive pages read by connectorx (a compiled reader) on MariaDB/MySQL and PostgreSQL.

PyMySQL parses every row in Python, so on MariaDB the archive's read kept a core busy next to
the live writers (benchmarks/retention.py). connectorx reads the same rows in Rust straight into
Arrow. Two things it does differently from the cursor path, and what this module does about them:

- It takes SQL text, not bound parameters. A page's query is rendered with the dialect's own
  literal rendering of typed values (`literal_binds`), and the only values in it are ones the
  code itself produced: the day's bounds (datetimes) and the key of the previous page's last row
  (read back from the database). Never text a user typed.
- It returns DECIMAL columns as `decimal128(38, 10)`, silently dropping digits past the tenth.
  So decimal columns are selected as text (`CAST(.. AS CHAR/VARCHAR)`) and cast in Arrow to
  `decimal128(38, 18)` like the cursor path does: a value that would lose a digit is refused.

It takes a connection URL with the password in it: every error it raises is redacted.
SQLite (and a URL with connection options connectorx would not understand) keep the cursor path.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Numeric, String, Table, cast
from sqlalchemy.engine import URL, Engine

from ingestion_pipelines.core.redaction import redact
from ingestion_pipelines.storage.archive import raw_select
from ingestion_pipelines.storage.archive_pages import PageError
from ingestion_pipelines.storage.types import ExactDecimal

# SQLAlchemy dialect name -> connectorx URL scheme
_SCHEMES = {"mysql": "mysql", "mariadb": "mysql", "postgresql": "postgresql"}
# URL options the SQLAlchemy URL may carry that connectorx does without (it reads UTF-8 anyway)
_DROPPED_OPTIONS = {"charset"}


def connectorx_url(url: URL) -> str | None:
    """The connectorx URL of a SQLAlchemy URL (password included: never log it); None when this
    database or one of its connection options is not one connectorx reads."""
    scheme = _SCHEMES.get(url.get_backend_name())
    if scheme is None or set(url.query) - _DROPPED_OPTIONS:
        return None
    try:
        import connectorx  # noqa: F401
    except ImportError:
        return None
    return url.set(drivername=scheme, query={}).render_as_string(hide_password=False)


def text_decimal_select(table: Table):
    """`raw_select(table)` with exact decimal columns as their text (connectorx would round)."""
    query = raw_select(table)
    columns = []
    for column, selected in zip(table.columns, query.selected_columns, strict=True):
        if isinstance(column.type, ExactDecimal | Numeric):
            selected = cast(column, String).label(column.name)
        columns.append(selected)
    return query.with_only_columns(*columns)


def render_sql(engine: Engine, query) -> str:
    """`query` as SQL text for connectorx. Safe only because every value in a page query is one
    the code produced (day bounds, the previous page's last key, the page size), rendered by the
    dialect's literal rendering of its typed value: quoted and escaped as a literal, never SQL.
    (MySQL's escaping of backslashes follows the server's NO_BACKSLASH_ESCAPES mode as the
    engine read it on connecting; connectorx's session starts in the same server default.)"""
    return str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))


def read_page_cx(url: str, sql: str, schema: pa.Schema) -> pa.RecordBatch:
    """Run `sql` (its columns in `schema`'s order) through connectorx; its rows as one batch of
    `schema`. Errors carry no credentials; a value that does not fit exactly raises `PageError`."""
    import connectorx

    failure = None
    try:
        table = connectorx.read_sql(url, sql, return_type="arrow")
    except Exception as exc:  # connectorx raises bare RuntimeErrors
        failure = _redacted(str(exc), url)
    if failure is not None:  # raised outside the handler: no chained original holding the URL
        raise PageError(f"connectorx read failed: {failure}")
    if table.num_rows == 0:
        return _empty(schema)
    arrays = []
    for field, column in zip(schema, table.columns, strict=True):
        try:
            arrays.append(_to_kind(field.type, column.combine_chunks()))
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise PageError(f"column {field.name}: {exc}") from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _empty(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)


def _to_kind(kind: pa.DataType, values: pa.Array) -> pa.Array:
    """connectorx's column as `kind` (safe casts: a lost digit or overflow raises)."""
    if values.type == kind:
        return values
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        # stored naive UTC: read as wall time, then labelled UTC (same instants)
        if pa.types.is_string(values.type):
            values = pc.cast(values, pa.timestamp(kind.unit))
        elif pa.types.is_timestamp(values.type) and values.type.tz is None:
            values = values.cast(pa.timestamp(kind.unit))
    return pc.cast(values, kind)


def _redacted(text: str, url: str) -> str:
    """`text` without the URL's credentials (the whole URL too, should it be quoted)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    for secret in (url, parsed.password, parsed.username):
        if secret and len(str(secret)) >= 3:
            text = text.replace(str(secret), "***")
    return redact(text)
