"""Migration 0026_vn_more on SQLite, MariaDB and PostgreSQL: the one-stock / one-fund settings an
operator stored for vn_corporate_events and fmarket_fund_holdings become their subset settings
(the workers now read every stock / fund), so their runs stay as configured; and back."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select

from ingestion_pipelines.sources.declared import load_declared_sources
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import get_engine
from ingestion_pipelines.storage.migrate import downgrade, upgrade

BEFORE = "0024_financial_statements"


def _stored(engine) -> dict:
    config = tables.worker_config
    with engine.connect() as conn:
        rows = conn.execute(select(config.c.worker_id, config.c.key, config.c.value)).all()
    return {(w, k): v for w, k, v in rows}


def test_0026_renames_the_one_item_settings_and_back(database_url):
    assert upgrade(database_url, BEFORE) == BEFORE
    engine = get_engine(database_url)
    now = datetime(2026, 12, 6, tzinfo=UTC)
    rows = [
        ("vn_corporate_events", "ticker", "FPT"),
        ("fmarket_fund_holdings", "fund_id", 23),
        ("vn_corporate_events", "page_size", 20),  # not renamed
        ("vn_stocks", "ticker", "kept"),  # another worker's key of the same name
    ]
    with engine.begin() as conn:
        conn.execute(
            insert(tables.worker_config),
            [
                {"worker_id": w, "key": k, "value": v, "updated_at": now, "updated_by": "test"}
                for w, k, v in rows
            ],
        )
    upgrade(database_url)
    assert _stored(engine) == {
        ("vn_corporate_events", "tickers"): "FPT",
        ("fmarket_fund_holdings", "fund_ids"): "23",
        ("vn_corporate_events", "page_size"): 20,
        ("vn_stocks", "ticker"): "kept",
    }
    sources = load_declared_sources()  # the stored values are valid settings of the workers
    assert sources["vn_corporate_events"].Settings(tickers="FPT", page_size=20).tickers == "FPT"
    assert sources["fmarket_fund_holdings"].Settings(fund_ids="23").fund_ids == "23"

    downgrade(database_url, BEFORE)
    assert _stored(engine)[("fmarket_fund_holdings", "fund_id")] == 23
    assert _stored(engine)[("vn_corporate_events", "ticker")] == "FPT"
