"""A database migrated to head is exactly the schema declaration, on SQLite, MariaDB and
PostgreSQL; and the comparison is not blind: every kind of difference it must catch, it reports."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.dialects.mysql.pymysql import MySQLDialect_pymysql
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2

from ingestion_pipelines.cli import main as ingest
from ingestion_pipelines.storage.migrate import upgrade
from ingestion_pipelines.storage.pool import get_engine
from ingestion_pipelines.storage.schema_drift import differences, schema_drift
from ingestion_pipelines.storage.schema_rules import type_signature
from ingestion_pipelines.storage.types import (
    ExactDecimal,
    JsonDocument,
    JsonValue,
    LongText,
    UtcDateTime,
)
from ingestion_pipelines_tests.storage.schema_helpers import metadata_copy


def test_a_database_migrated_to_head_is_exactly_the_schema_declaration(database_url):
    upgrade(database_url)
    assert schema_drift(database_url) == []


def _wider_code(md: MetaData) -> None:
    md.tables["fund"].c.code.type = String(128)


def _nav_as_text(md: MetaData) -> None:
    md.tables["fund_nav"].c.nav.type = LongText()


def _instant_as_date(md: MetaData) -> None:
    md.tables["crypto_market_snapshot"].c.last_updated.type = Date()


def _json_as_short_text(md: MetaData) -> None:
    md.tables["worker_state"].c.details.type = String(64)


def _name_nullable(md: MetaData) -> None:
    md.tables["fund"].c.name.nullable = True


def _index_dropped(md: MetaData) -> None:
    table = md.tables["stock_eod"]
    table.indexes.discard(next(i for i in table.indexes if i.name == "ix_stock_eod_trade_date"))


def _index_made_unique(md: MetaData) -> None:
    table = md.tables["execution_log"]
    table.indexes.discard(next(i for i in table.indexes if i.name == "ix_execution_log_run_id"))
    Index(None, table.c.run_id, unique=True)


def _unique_added(md: MetaData) -> None:
    md.tables["stock"].append_constraint(UniqueConstraint("isin"))


def _primary_key_changed(md: MetaData) -> None:
    table = md.tables["fund_nav"]
    table.c.nav_date.primary_key = False
    table.append_constraint(PrimaryKeyConstraint("fund_id", name="pk_fund_nav"))


def _server_default_added(md: MetaData) -> None:
    md.tables["stock"].append_column(
        Column("status", String(32), nullable=False, server_default="listed"),
        replace_existing=True,
    )


def _column_added(md: MetaData) -> None:
    md.tables["fear_greed_index"].append_column(Column("note", String(64)))


def _column_missing(md: MetaData) -> None:
    table = md.tables["fear_greed_index"]
    table._columns.remove(table.c.extra)


def _table_added(md: MetaData) -> None:
    Table("new_table", md, Column("id", Integer, primary_key=True), mysql_charset="utf8mb4")


def _table_missing(md: MetaData) -> None:
    md.remove(md.tables["feed_fence"])


def _computed_dropped(md: MetaData) -> None:
    scope = md.tables["worker_config"].c.scope
    scope.computed = None
    scope.server_default = None


MUTATIONS: dict[str, Callable[[MetaData], None]] = {
    "varchar length": _wider_code,
    "exact decimal to text": _nav_as_text,
    "utc datetime to date": _instant_as_date,
    "json to varchar": _json_as_short_text,
    "nullability": _name_nullable,
    "index dropped": _index_dropped,
    "index made unique": _index_made_unique,
    "unique constraint added": _unique_added,
    "primary key": _primary_key_changed,
    "server default": _server_default_added,
    "column added": _column_added,
    "column missing": _column_missing,
    "table added": _table_added,
    "table missing": _table_missing,
    "computed column": _computed_dropped,
}


# Alembic warns that it cannot alter a computed column; the check here reports it all the same.
@pytest.mark.filterwarnings("ignore:Computed default on worker_config.scope")
def test_every_kind_of_difference_is_reported(database_url):
    upgrade(database_url)
    missed = []
    with get_engine(database_url).connect() as conn:
        for name, mutate in MUTATIONS.items():
            changed = metadata_copy()
            mutate(changed)
            if not differences(conn, changed):
                missed.append(name)
    assert missed == []


def test_a_datetime_without_microseconds_is_a_difference_only_where_it_is_stored_so(database_url):
    upgrade(database_url)
    changed = metadata_copy()
    # mysql.DATETIME on MySQL: a plain DateTime compiles as DATETIME(6) there once Dagster is
    # imported (dagster/_core/storage/sql.py hooks its compilation), as DATETIME otherwise.
    seconds_only = DateTime().with_variant(mysql.DATETIME(), "mysql", "mariadb")
    changed.tables["crypto_market_snapshot"].c.last_updated.type = seconds_only
    with get_engine(database_url).connect() as conn:
        found = differences(conn, changed)
        backend = conn.dialect.name
    # MariaDB stores UtcDateTime as DATETIME(6): a plain DATETIME would lose the microseconds.
    # PostgreSQL's TIMESTAMP and SQLite's DATETIME are the same column either way.
    if backend in ("mysql", "mariadb"):
        assert len(found) == 1 and "last_updated" in found[0]
    else:
        assert found == []


def test_a_table_outside_utf8mb4_is_a_difference_on_mariadb(mariadb_url):
    upgrade(mariadb_url)
    with get_engine(mariadb_url).begin() as conn:
        conn.execute(text("ALTER TABLE fear_greed_index CONVERT TO CHARACTER SET latin1"))
    assert schema_drift(mariadb_url) == ["table fear_greed_index is latin1, not utf8mb4"]


@pytest.mark.parametrize(
    ("dialect", "stored", "declared"),
    [
        (MySQLDialect_pymysql(), mysql.INTEGER(display_width=11), Integer()),
        (
            MySQLDialect_pymysql(),
            mysql.BIGINT(display_width=20),
            BigInteger().with_variant(Integer, "sqlite"),
        ),
        (MySQLDialect_pymysql(), mysql.VARCHAR(64, collation="utf8mb4_unicode_ci"), String(64)),
        (MySQLDialect_pymysql(), mysql.DATETIME(fsp=6), UtcDateTime()),
        (MySQLDialect_pymysql(), mysql.DECIMAL(38, 18), ExactDecimal()),
        (MySQLDialect_pymysql(), mysql.LONGTEXT(), JsonValue()),
        (MySQLDialect_pymysql(), mysql.LONGTEXT(), JsonDocument()),
        (PGDialect_psycopg2(), postgresql.NUMERIC(38, 18), ExactDecimal()),
        (PGDialect_psycopg2(), postgresql.TIMESTAMP(), UtcDateTime()),
        (PGDialect_psycopg2(), postgresql.TEXT(), JsonValue()),
        (sqlite.dialect(), sqlite.VARCHAR(64), ExactDecimal()),
        (sqlite.dialect(), sqlite.DATETIME(), UtcDateTime()),
    ],
    ids=lambda v: getattr(v, "name", None) or repr(v),
)
def test_the_same_stored_type_spelled_differently_is_no_difference(dialect, stored, declared):
    assert type_signature(stored, dialect) == type_signature(declared, dialect)


@pytest.mark.parametrize(
    ("dialect", "stored", "declared"),
    [
        (MySQLDialect_pymysql(), mysql.DATETIME(), UtcDateTime()),
        (MySQLDialect_pymysql(), mysql.TEXT(), JsonValue()),
        (MySQLDialect_pymysql(), mysql.DECIMAL(20, 8), ExactDecimal()),
        (MySQLDialect_pymysql(), mysql.VARCHAR(64), String(65)),
        (PGDialect_psycopg2(), postgresql.NUMERIC(), ExactDecimal()),
        (sqlite.dialect(), sqlite.NUMERIC(38, 18), ExactDecimal()),
        (sqlite.dialect(), BigInteger(), Integer()),
    ],
    ids=lambda v: getattr(v, "name", None) or repr(v),
)
def test_a_different_stored_type_is_a_difference(dialect, stored, declared):
    assert type_signature(stored, dialect) != type_signature(declared, dialect)


def test_ingest_db_check_exits_1_on_a_difference(sqlite_url, capsys):
    upgrade(sqlite_url)
    assert ingest(["db", "check", "--database-url", sqlite_url]) == 0
    with get_engine(sqlite_url).begin() as conn:
        conn.execute(text("DROP INDEX ix_stock_eod_trade_date"))
    assert ingest(["db", "check", "--database-url", sqlite_url]) == 1
    out = capsys.readouterr().out
    assert "ix_stock_eod_trade_date" in out and "1 difference(s)" in out
