"""Migration 0031_provider_observation on SQLite, MariaDB and PostgreSQL: a new table (the other
providers' values of a run's rows, issue 19 §11), its key and index; downgrading drops it and
upgrading again recreates it empty."""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa

from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import get_engine
from ingestion_pipelines.storage.migrate import downgrade, head_revision, upgrade

BEFORE = "0030_company_profile"


def test_0031_creates_provider_observation_and_downgrades(database_url):
    assert upgrade(database_url) == head_revision()
    engine = get_engine(database_url)
    row = {"worker_id": "vn_indices", "row_key": '{"index_code":"VN30","trade_date":"2025-12-03"}',
           "provider": "vietcap", "column_name": "close", "day": date(2025, 12, 3),
           "value": "1971.99", "fetched_at": datetime(2026, 12, 6, tzinfo=UTC)}  # fmt: skip
    with engine.begin() as conn:
        conn.execute(tables.provider_observation.insert(), [row])
        inspector = sa.inspect(conn)
        key = inspector.get_pk_constraint("provider_observation")["constrained_columns"]
        indexes = [i["column_names"] for i in inspector.get_indexes("provider_observation")]
    assert key == ["worker_id", "row_key", "provider", "column_name"]
    assert ["worker_id", "day"] in indexes
    with engine.connect() as conn:
        value = conn.execute(sa.select(tables.provider_observation.c.value)).scalar_one()
    assert value == "1971.99"  # exact decimal text

    assert downgrade(database_url, BEFORE) == BEFORE
    assert "provider_observation" not in sa.inspect(get_engine(database_url)).get_table_names()
    assert upgrade(database_url) == head_revision()
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(tables.provider_observation))
        assert count.scalar_one() == 0
