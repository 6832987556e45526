"""Column types that behave the same on MySQL/MariaDB, PostgreSQL and SQLite."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, DateTime, Numeric, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator):
    """A UTC instant with microseconds, stored naive-UTC, returned timezone-aware.

    Naive datetimes given to it are refused: every time in this project is explicit about its zone.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=False))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give times with a timezone (UTC)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):  # SQLite may hand back text for computed expressions
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)


class ExactDecimal(TypeDecorator):
    """An exact decimal: DECIMAL(38, 18) on servers, text on SQLite (which has no decimal type)."""

    impl = Numeric(38, 18)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(38, 18, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError(
                f"float {value!r} given for an exact decimal column: pass Decimal or str"
            )
        value = Decimal(value)
        if dialect.name == "sqlite":
            return format(value.normalize() if value else Decimal(0), "f")
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return Decimal(value)


class LongText(TypeDecorator):
    """Unbounded text (LONGTEXT on MySQL, where TEXT stops at 64 KiB)."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.LONGTEXT())
        return dialect.type_descriptor(Text())


class JsonValue(TypeDecorator):
    """Any JSON value; compared and stored the same way on every database."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.LONGTEXT())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value, dialect):
        return None if value is None else json.dumps(value, default=str, ensure_ascii=False)

    def process_result_value(self, value, dialect):
        return None if value is None else json.loads(value)


def json_text(value: Any) -> str:
    """Canonical JSON text of `value` (sorted keys, UTF-8 as is, exact decimals as text)."""
    return json.dumps(value, default=str, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


class JsonDocument(TypeDecorator):
    """A JSON document (the `extra` columns), stored as text on every database and read back as
    Python values. Given a `str`, it is taken as JSON text already encoded with `json_text`: hot
    paths that bypass bind processing (the sidecar's driver executemany) pass that same text, so
    both paths store the same bytes."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.LONGTEXT())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value, dialect):
        if value is None or isinstance(value, str):
            return value
        return json_text(value)

    def process_result_value(self, value, dialect):
        return None if value is None else json.loads(value)

    def compare_values(self, x, y) -> bool:
        return _as_json(x) == _as_json(y)


def _as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else json.loads(json_text(value))
