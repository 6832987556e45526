"""Recent one-minute bars from `trade_bar_1m`, so the live page's chart starts with history
instead of an empty frame (read-only; the same JSON shape as the `bars:` messages).

The database is INGEST_DATABASE_URL unless `ingest live --database-url` says otherwise (for a
`trade_bars_1m` whose `database_url` points elsewhere): resolving the config chain here would
import Dagster into the relay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from ingestion_pipelines.storage.tables import trade_bar_1m

MAX_MINUTES = 24 * 60


def _text(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.replace(tzinfo=value.tzinfo or UTC).isoformat()
    return value


def recent_bars(
    database_url: str, source: str, symbol: str, minutes: int, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The bars of `source`/`symbol` of the last `minutes` (at most a day), oldest first."""
    from ingestion_pipelines.storage.engines import get_engine

    minutes = max(1, min(minutes, MAX_MINUTES))
    since = (now or datetime.now(UTC)) - timedelta(minutes=minutes)
    b = trade_bar_1m.c
    query = (
        select(trade_bar_1m)
        .where(b.source == source, b.symbol == symbol, b.bar_start >= since)
        .order_by(b.bar_start)
    )
    with get_engine(database_url).connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [{k: _text(v) for k, v in row.items()} for row in rows]
