"""Column types that behave the same on MySQL/MariaDB, PostgreSQL and SQLite."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
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


class JsonValue(LongText):
    """Any JSON value; compared and stored the same way on every database (as long text)."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else json.dumps(value, default=str, ensure_ascii=False)

    def process_result_value(self, value, dialect):
        return None if value is None else json.loads(value)


_CANONICAL = json.JSONEncoder(
    default=str, ensure_ascii=False, sort_keys=True, separators=(",", ":")
)
_INT64 = (-(2**63), 2**64)  # the integers orjson writes


_SCALARS = frozenset({str, bool, type(None), Decimal})


def _plain_json(value: Any) -> bool:
    """Whether orjson writes `value` exactly as `_CANONICAL` does: str keys, and values that are
    str, int within 64 bits, bool, None, Decimal (written as its text) or lists and dicts of
    them. Floats are left to the standard encoder, which writes them differently (`1e+16`)."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is int:
        return _INT64[0] <= value < _INT64[1]
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not (type(item) in _SCALARS or _plain_json(item)):
                return False
        return True
    if kind is list:
        return all(type(item) in _SCALARS or _plain_json(item) for item in value)
    return False


def json_text(value: Any) -> str:
    """Canonical JSON text of `value` (sorted keys, UTF-8 as is, exact decimals as text). The
    same text whichever encoder writes it: orjson for plain values (the hot path of every row's
    `extra`), the standard library's for the rest."""
    if _plain_json(value):
        try:
            return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()
        except orjson.JSONEncodeError:  # e.g. a lone surrogate: the standard encoder decides
            pass
    return _CANONICAL.encode(value)


class JsonDocument(LongText):
    """A JSON document (the `extra` columns), stored as text on every database and read back as
    Python values. Given a `str`, it is taken as JSON text already encoded with `json_text`: hot
    paths that bypass bind processing (the sidecar's driver executemany) pass that same text, so
    both paths store the same bytes."""

    cache_ok = True

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
