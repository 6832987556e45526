"""Migration 0028_stock_eod_provider on SQLite, MariaDB and PostgreSQL: `stock_eod` gains
`provider` and `prices_adjusted` (NULL for the rows stored before: VNDIRECT's raw prices, kept
as they were) and `volume` becomes nullable; downgrading drops them and the rows that could not
exist before (a provider's adjusted bars, a NULL volume)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import sqlalchemy as sa

from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import get_engine
from ingestion_pipelines.storage.migrate import downgrade, head_revision, upgrade

BEFORE = "0027_crypto_more"
DAY, NEXT = date(2026, 9, 22), date(2026, 9, 23)


def _row(symbol: str, day: date, close: str, volume: int | None = 1000) -> dict:
    price = Decimal(close)
    return {"symbol": symbol, "trade_date": day, "open": price, "high": price, "low": price,
            "close": price, "volume": volume}  # fmt: skip


def test_0028_adds_provider_and_adjusted_flag_and_keeps_old_rows(database_url):
    assert upgrade(database_url) == head_revision()
    assert downgrade(database_url, BEFORE) == BEFORE
    engine = get_engine(database_url)
    old = sa.Table("stock_eod", sa.MetaData(), autoload_with=engine)
    assert "provider" not in old.c and "prices_adjusted" not in old.c
    assert not old.c.volume.nullable
    with engine.begin() as conn:  # the declared table's types, only the columns 0027 has
        conn.execute(
            tables.stock_eod.insert(), [_row("FPT", DAY, "66.6"), _row("ABB", DAY, "13.9")]
        )

    assert upgrade(database_url) == head_revision()
    c = tables.stock_eod.c
    with engine.begin() as conn:
        stored = conn.execute(
            sa.select(c.symbol, c.close, c.volume, c.provider, c.prices_adjusted).order_by(c.symbol)
        ).all()
        conn.execute(
            tables.stock_eod.insert(),
            [{**_row("FPT", NEXT, "66.2", None), "provider": "vietcap", "prices_adjusted": True}],
        )
        columns = {col["name"]: col for col in sa.inspect(conn).get_columns("stock_eod")}
    assert [tuple(r) for r in stored] == [
        ("ABB", Decimal("13.9"), Decimal(1000), None, None),
        ("FPT", Decimal("66.6"), Decimal(1000), None, None),
    ]
    assert columns["volume"]["nullable"] and columns["provider"]["nullable"]

    assert downgrade(database_url, BEFORE) == BEFORE  # the Vietcap row could not exist before
    with engine.connect() as conn:
        query = sa.text("SELECT symbol, trade_date FROM stock_eod")
        kept = sorted(tuple(r) for r in conn.execute(query))
        names = {col["name"] for col in sa.inspect(conn).get_columns("stock_eod")}
    assert [s for s, _ in kept] == ["ABB", "FPT"]
    assert "provider" not in names and "prices_adjusted" not in names
