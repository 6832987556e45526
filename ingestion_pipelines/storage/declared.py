"""Tables declared by the YAML sources (``ingestion_pipelines/defs/<worker_id>/defs.yaml``).

A declared source says its table in its ``defs.yaml``::

    table:
      name: crypto_market_snapshot
      columns:
        coin_id: string(128) key          # <type> [key] [required]
        price_usd: decimal

`storage.tables` adds every declared table to the one `metadata` (and to `DATA_TABLES`) when it is
imported, with the ``extra`` column every data table has (`add_declared_tables`);
`storage.tables.load_declared_tables()` says their names, idempotently, without Dagster, so
migrations, the sidecar and the catalogue see the same tables. Reading the folders is here too
(`declarations()`), since tables and sources come from the same files.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeEngine

from ingestion_pipelines.storage.pool import MYSQL_CHARSET
from ingestion_pipelines.storage.types import ExactDecimal, JsonValue, LongText, UtcDateTime

DEFS_ROOT = Path(__file__).resolve().parent.parent / "defs"
REST_SOURCE_TYPE = "ingestion_pipelines.components.RestSource"
# libyaml's parser when PyYAML has it (it does here): the same documents, ~9x faster (22 files:
# 0.021 s against 0.195 s)
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TYPE = re.compile(r"^(?P<name>[a-z_]+)(?:\((?P<length>\d+)\))?$")
COLUMN_TYPES: dict[str, Any] = {
    "string": String,  # string(<length>)
    "text": Text,
    "long_text": LongText,
    "integer": Integer,
    "bigint": BigInteger,
    "boolean": Boolean,
    "decimal": ExactDecimal,  # DECIMAL(38,18): exact, never a float
    "date": Date,
    "utc_datetime": UtcDateTime,
    "json": JsonValue,
}


class DeclarationError(ValueError):
    """A defs.yaml that cannot be read: the message names the file and what is wrong."""


@dataclass(frozen=True)
class Declaration:
    """One declared source: its folder and the ``attributes`` of its defs.yaml."""

    folder: Path
    attributes: dict[str, Any]

    @property
    def worker_id(self) -> str:
        """The worker id the folder declares."""
        return self.attributes["worker_id"]


@dataclass(frozen=True)
class ColumnSpec:
    """A declared column: its type name, length, and whether it is in the key or required."""

    name: str
    type: str
    length: int | None = None
    key: bool = False
    required: bool = False

    def sql_type(self) -> TypeEngine:
        """The SQLAlchemy type (the project's exact decimal and UTC time types)."""
        kind = COLUMN_TYPES[self.type]
        return kind(self.length) if self.length else kind()


def parse_column(name: str, text: str) -> ColumnSpec:
    """``"string(128) key"`` → a ColumnSpec; a ValueError says what is wrong."""
    type_text, *flags = str(text).split()
    match = _TYPE.match(type_text)
    if not match or match["name"] not in COLUMN_TYPES:
        raise ValueError(
            f"column {name}: unknown type {type_text!r} (one of {sorted(COLUMN_TYPES)})"
        )
    unknown = set(flags) - {"key", "required"}
    if unknown:
        raise ValueError(f"column {name}: unknown flags {sorted(unknown)} (key, required)")
    length = int(match["length"]) if match["length"] else None
    if match["name"] == "string" and length is None:
        raise ValueError(f"column {name}: string needs a length, e.g. string(64)")
    return ColumnSpec(name, match["name"], length, "key" in flags, "required" in flags)


def table_columns(attributes: dict[str, Any]) -> list[ColumnSpec]:
    """The declared columns of a source's table, in order."""
    columns = (attributes.get("table") or {}).get("columns") or {}
    return [parse_column(name, text) for name, text in columns.items()]


def _read(path: Path) -> dict[str, Any]:
    stat = path.stat()
    # loading the definitions asks for the declarations several times: parse each file once
    return copy.deepcopy(_parsed(path, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=256)
def _parsed(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise DeclarationError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise DeclarationError(f"{path}: expected a mapping with `type` and `attributes`")
    return document


def declarations(root: Path = DEFS_ROOT) -> list[Declaration]:
    """Every folder of ``defs/`` holding a RestSource defs.yaml, sorted by worker id."""
    found = []
    for path in sorted(root.glob("*/defs.yaml")):
        document = _read(path)
        if document.get("type") != REST_SOURCE_TYPE:
            continue
        attributes = document.get("attributes") or {}
        if not attributes.get("worker_id"):
            raise DeclarationError(f"{path}: attributes.worker_id is missing")
        found.append(Declaration(path.parent, attributes))
    ids = [d.worker_id for d in found]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise DeclarationError(f"worker ids declared twice under {root}: {twice}")
    return sorted(found, key=lambda d: d.worker_id)


def writers_by_table(root: Path = DEFS_ROOT) -> dict[str, str]:
    """The worker id of the YAML source declaring each table (its defs.yaml `table.name`)."""
    return {
        name: d.worker_id
        for d in declarations(root)
        if (name := (d.attributes.get("table") or {}).get("name"))
    }


def upstream_workers(root: Path = DEFS_ROOT) -> dict[str, tuple[str, ...]]:
    """For each YAML source reading another's table (`request.for_each.table`), that writer."""
    by_table = writers_by_table(root)
    found = {}
    for d in declarations(root):
        table = ((d.attributes.get("request") or {}).get("for_each") or {}).get("table")
        writer = by_table.get(table) if table else None
        if writer and writer != d.worker_id:
            found[d.worker_id] = (writer,)
    return found


def declared_table(
    declaration: Declaration, metadata: MetaData, extra_column: Callable[[], Column]
) -> Table:
    """The declared table in `metadata` (added on first call, with the `extra` column)."""
    table_spec = declaration.attributes.get("table") or {}
    name = table_spec.get("name")
    if not name:
        raise DeclarationError(f"{declaration.folder}/defs.yaml: table.name is missing")
    existing = metadata.tables.get(name)
    if existing is not None:
        return existing
    try:
        specs = table_columns(declaration.attributes)
    except ValueError as exc:
        raise DeclarationError(f"{declaration.folder}/defs.yaml: {exc}") from None
    if not any(c.key for c in specs):
        raise DeclarationError(f"{declaration.folder}/defs.yaml: no column is marked `key`")
    columns = [
        Column(
            c.name,
            c.sql_type(),
            primary_key=c.key,
            nullable=not (c.key or c.required),
            **({"autoincrement": False} if c.key and c.type in ("integer", "bigint") else {}),
        )
        for c in specs
    ]
    indexes = [Index(None, *cols) for cols in table_spec.get("indexes") or []]
    table = Table(name, metadata, *columns, extra_column(), *indexes)
    table.dialect_kwargs["mysql_charset"] = MYSQL_CHARSET
    return table


def add_declared_tables(
    metadata: MetaData,
    data_tables: dict[str, Table],
    extra_column: Callable[[], Column],
    root: Path = DEFS_ROOT,
) -> list[str]:
    """Add every table declared under `root` to `metadata` and `data_tables` (a table already
    there is kept: calling it again changes nothing); the declared tables' names.
    `storage.tables.load_declared_tables()` is the call everyone uses."""
    names = []
    for declaration in declarations(root):
        table = declared_table(declaration, metadata, extra_column)
        data_tables[table.name] = table
        names.append(table.name)
    return names
