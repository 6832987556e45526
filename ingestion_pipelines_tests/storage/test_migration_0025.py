"""Migration 0025_providers on SQLite, MariaDB and PostgreSQL: `index_eod` rows stored with
VNDIRECT's codes HNX/UPCOM get issue 19's HNXINDEX/UPCOMINDEX (a clash with a row already under
the new code keeps that row), and the `provider` columns exist, NULL for the old rows."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import sqlalchemy as sa
from loguru import logger

from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import get_engine
from ingestion_pipelines.storage.migrate import downgrade, head_revision, upgrade

BEFORE = "0024_financial_statements"
DAY, NEXT = date(2025, 12, 3), date(2025, 12, 4)


def _row(code: str, day: date, close: str) -> dict:
    level = Decimal(close)
    return {"index_code": code, "trade_date": day, "open": level, "high": level, "low": level,
            "close": level}  # fmt: skip


def test_0025_renames_the_codes_and_adds_the_provider_columns(database_url):
    assert upgrade(database_url) == head_revision()
    assert downgrade(database_url, BEFORE) == BEFORE
    engine = get_engine(database_url)
    old = sa.Table("index_eod", sa.MetaData(), autoload_with=engine)
    assert "provider" not in old.c
    rows = [
        _row("HNX", DAY, "250.1"),
        _row("HNX", NEXT, "251.2"),
        _row("UPCOM", DAY, "98.7"),
        _row("HNXINDEX", NEXT, "251.3"),  # already under the new name: it stands
        _row("VN30", DAY, "1971.99"),
    ]
    with engine.begin() as conn:  # the declared table's types, only the columns 0024 has
        conn.execute(tables.index_eod.insert(), rows)
    logged: list[str] = []
    sink = logger.add(logged.append, format="{message}")
    try:
        assert upgrade(database_url) == head_revision()
    finally:
        logger.remove(sink)
    columns = tables.index_eod.c
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(
                columns.index_code, columns.trade_date, columns.close, columns.provider
            ).order_by(columns.index_code, columns.trade_date)
        ).all()
        snapshot_columns = sa.inspect(conn).get_columns("crypto_market_snapshot")
    assert [tuple(r) for r in stored] == [
        ("HNXINDEX", DAY, Decimal("250.1"), None),
        ("HNXINDEX", NEXT, Decimal("251.3"), None),
        ("UPCOMINDEX", DAY, Decimal("98.7"), None),
        ("VN30", DAY, Decimal("1971.99"), None),
    ]
    assert "provider" in {c["name"] for c in snapshot_columns}
    assert any("renamed on 2 rows" in m and "1 old-code rows deleted" in m for m in logged)

    assert downgrade(database_url, BEFORE) == BEFORE  # the codes go back
    with engine.connect() as conn:
        codes = sorted({r[0] for r in conn.execute(sa.text("SELECT index_code FROM index_eod"))})
    assert codes == ["HNX", "UPCOM", "VN30"]
