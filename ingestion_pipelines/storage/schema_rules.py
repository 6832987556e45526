"""This project's rules for Alembic's autogenerate: how a database's columns are compared with the
metadata (`storage.tables.full_metadata()`), and how the project's own types are written into a
generated migration.

Types are compared by what each database really stores: the metadata type compiled for the
database's dialect (so `UtcDateTime` is DATETIME(6) on MariaDB, `ExactDecimal` VARCHAR(64) on
SQLite) against the reflected type compiled the same way, both written in one canonical
spelling. Spellings that differ and store the same thing are no difference (INT(11) and
INTEGER, DECIMAL and NUMERIC, a collation the table already has); every other difference is one.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.types import TypeDecorator, TypeEngine

from ingestion_pipelines.storage import partitions_pg
from ingestion_pipelines.storage import types as project_types

_TYPES_MODULE = project_types.__name__

# Spellings of one stored type, per dialect family: the first name stands for the others.
_SYNONYMS: dict[str, tuple[tuple[str, ...], ...]] = {
    "common": (
        ("integer", "int", "int4"),
        ("bigint", "int8"),
        ("smallint", "int2"),
        ("numeric", "decimal"),
        ("varchar", "character varying"),
        ("timestamp", "timestamp without time zone"),
        ("double", "double precision", "float8"),
    ),
    # MariaDB's JSON is an alias of LONGTEXT; BOOLEAN of TINYINT(1).
    "mysql": (("longtext", "json"), ("tinyint(1)", "bool", "boolean")),
    "postgresql": (("boolean", "bool"),),
    "sqlite": (),
}
_MYSQL_ATTRIBUTES = re.compile(r"\s+(character set|charset|collate)\s+\w+")
_INTEGER_WIDTH = re.compile(r"\b(tinyint|smallint|mediumint|int|integer|bigint)\(\d+\)")


def _family(dialect_name: str) -> str:
    return "mysql" if dialect_name in ("mysql", "mariadb") else dialect_name


def _canonical_name(text: str, family: str) -> str:
    for group in (*_SYNONYMS["common"], *_SYNONYMS.get(family, ())):
        for spelling in group:
            if text == spelling or text.startswith(spelling + "("):
                return group[0] + text[len(spelling) :]
    return text


def type_signature(type_: TypeEngine, dialect: Any) -> str:
    """What a column of `type_` stores on `dialect`, in one canonical spelling
    (`numeric(38,18)`, `datetime(6)`, `varchar(64)`, `longtext`)."""
    family = _family(dialect.name)
    text = type_.compile(dialect=dialect).lower().strip()
    text = re.sub(r"\s*\(\s*", "(", text)
    text = re.sub(r"\s*,\s*", ",", text)
    text = re.sub(r"\s*\)", ")", text)
    text = re.sub(r"\s+", " ", text)
    if family == "mysql":
        text = _MYSQL_ATTRIBUTES.sub("", text)
        text = _canonical_name(text, family)
        # display widths are no part of an integer's range; TINYINT(1) is MariaDB's boolean
        if text != "tinyint(1)":
            text = _INTEGER_WIDTH.sub(r"\1", text)
    return _canonical_name(text, family)


def compare_type(
    context: Any,
    inspected_column: Any,
    metadata_column: Any,
    inspected_type: TypeEngine,
    metadata_type: TypeEngine,
) -> bool:
    """Alembic's `compare_type` hook: True when the stored type differs from the declared one."""
    dialect = context.dialect
    return type_signature(inspected_type, dialect) != type_signature(metadata_type, dialect)


# The project types a reflected type stands for, per dialect family: only where no other
# declared type is stored the same way (on SQLite, VARCHAR(64) may be a String(64) too; on
# PostgreSQL and SQLite, TEXT may be a Text).
_PORTABLE = {
    "mysql": (project_types.UtcDateTime(), project_types.ExactDecimal(), project_types.LongText()),
    "postgresql": (project_types.UtcDateTime(), project_types.ExactDecimal()),
    "sqlite": (project_types.UtcDateTime(),),
}


def portable_type(type_: TypeEngine, dialect: Any) -> TypeEngine:
    """A type reflected from `dialect`, as a type every database of the project can run: the
    project type it stores (DECIMAL(38,18) on MariaDB is `ExactDecimal`), else its generic
    SQLAlchemy type without the database's collation (`mysql.VARCHAR`, `VARCHAR` become
    `String`). Declared types are returned as they are."""
    kind = type(type_)
    # reflected types are a dialect's own or the SQL-standard upper-case ones (VARCHAR, TEXT);
    # declared ones (String, BigInteger with a SQLite variant, the project's) stay as they are
    reflected = kind.__module__.startswith("sqlalchemy.dialects.") or kind.__name__.isupper()
    if not reflected or is_project_type(type_) or getattr(type_, "_variant_mapping", None):
        return type_
    signature = type_signature(type_, dialect)
    for candidate in _PORTABLE.get(_family(dialect.name), ()):
        if type_signature(candidate, dialect) == signature:
            return type(candidate)()
    try:
        generic = type_.as_generic()
    except NotImplementedError:
        return type_
    if getattr(generic, "collation", None) is not None:
        generic.collation = None
    return generic


def is_project_type(type_: Any) -> bool:
    """Whether `type_` is one of `storage.types` (UtcDateTime, ExactDecimal, JsonValue...)."""
    return isinstance(type_, TypeDecorator) and type(type_).__module__ == _TYPES_MODULE


def render_item(kind: str, obj: Any, autogen_context: Any) -> str | bool:
    """Alembic's `render_item` hook: the project's types are written as themselves
    (`ingestion_pipelines.storage.types.ExactDecimal()`, the module the migration template
    imports), so a generated migration creates exactly what the metadata declares on each
    database; everything else is rendered by Alembic."""
    if kind == "type" and is_project_type(obj):
        return f"{_TYPES_MODULE}.{type(obj).__name__}()"
    return False


def include_name(metadata: Any):
    """Alembic's `include_name` hook: every reflected name but the day partitions of a
    partitioned table (PostgreSQL lists them as tables of their own; `storage.partitions_pg`)."""

    def include(name: str | None, type_: str, parent_names: Any) -> bool:
        return not (type_ == "table" and name and partitions_pg.is_partition(name, metadata))

    return include


def autogenerate_options(metadata: Any) -> dict[str, Any]:
    """The MigrationContext options autogenerate and the drift check run with (what env.py's
    `context.configure(...)` would set; this project runs migrations without env.py, see
    `storage.migrate`)."""
    return {
        "target_metadata": metadata,
        "compare_type": compare_type,
        "compare_server_default": True,
        "render_item": render_item,
        # batch operations: the one spelling that also alters tables on SQLite
        "render_as_batch": True,
        "include_name": include_name(metadata),
        "include_object": None,
        "include_schemas": False,
        "upgrade_token": "upgrades",
        "downgrade_token": "downgrades",
        "sqlalchemy_module_prefix": "sa.",
        "alembic_module_prefix": "op.",
        "user_module_prefix": None,
        "literal_binds": False,
        "process_revision_directives": None,
    }
