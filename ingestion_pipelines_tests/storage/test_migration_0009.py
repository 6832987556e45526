"""Migration 0009 on SQLite, MariaDB and PostgreSQL: SSI rows stored the old way (field 66 read
as the side of the last match) become what the feed stores today."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from loguru import logger
from sqlalchemy import select

from ingestion_pipelines.feeds.ssi.feed import SsiIboard
from ingestion_pipelines.feeds.ssi.replay import SsiRecording
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import get_engine
from ingestion_pipelines.storage.migrate import downgrade, head_revision, upgrade

RECEIVED = datetime(2026, 4, 14, 6, 32, 8, tzinfo=UTC)
# The old reading: field 66 as a side code; the positions it read, the rest in `extra`.
OLD_SIDES = {"b": "buy", "s": "sell", "bu": "buy", "sd": "sell"}
OLD_READ = {0, 1, 2, 3, 4, 5, 6, 7, 22, 23, 24, 25, 26, 27, 42, 43, 45, 47, 54, 55, 59, 60, 61}
OLD_READ |= {66, 101}
NEW_QUOTE_COLUMNS = [name for name, _kind, _position in tables.SSI_QUOTE_COLUMNS]


def _old_quote(new: dict, raw: str) -> dict:
    """The row the feed stored before 0009 for the same frame, built from the raw fields."""
    fields = raw.split("|")
    extra = {str(i): v for i, v in enumerate(fields) if v and i not in OLD_READ}
    if fields[66] and fields[66] not in OLD_SIDES:
        extra["66"] = fields[66]
    row = {k: v for k, v in new.items() if k not in NEW_QUOTE_COLUMNS}
    row.update(last_side=OLD_SIDES.get(fields[66]), extra=extra or None)
    return row


def _today_and_old_rows(frames):
    """What the feed stores today for the frames, and what it stored before 0009."""
    feed = SsiIboard()
    quotes, old_quotes, trades = {}, {}, []
    for i, frame in enumerate(frames):
        parsed = feed.parse(frame.raw.encode(), RECEIVED + timedelta(milliseconds=i))
        (quote,) = parsed.rows["stock_quote"]
        key = (quote["symbol"], quote["quoted_at"])
        quotes[key] = {**quote, "extra": json.loads(quote["extra"]) if quote["extra"] else None}
        old_quotes[key] = _old_quote(quotes[key], frame.raw)
        trades += parsed.rows.get("trade_tick", [])
    side_66 = {f.raw.split("|")[1][2:]: OLD_SIDES[f.raw.split("|")[66]] for f in frames}
    old_trades = [
        {k: v for k, v in t.items() if k != "inferred_side"} | {"side": side_66[t["symbol"]]}
        for t in trades
    ]
    return quotes, old_quotes, trades, old_trades


def _stored(url):
    with get_engine(url).connect() as conn:
        quotes = conn.execute(select(tables.stock_quote)).mappings().all()
        trades = conn.execute(select(tables.trade_tick)).mappings().all()
    return {(q["symbol"], q["quoted_at"]): dict(q) for q in quotes}, [dict(t) for t in trades]


def test_0009_corrects_ssi_rows_stored_the_old_way(database_url):
    frames = SsiRecording.load().frames
    quotes, old_quotes, trades, old_trades = _today_and_old_rows(frames)
    assert {t["side"] for t in old_trades} == {"sell"}  # every equity trade stored as a sell
    binance = {
        "source": "binance",
        "symbol": "BTCUSDT",
        "trade_id": 7,
        "price": Decimal("43210.5"),
        "quantity": Decimal("0.1"),
        "side": "buy",
        "traded_at": RECEIVED,
        "received_at": RECEIVED,
    }
    assert upgrade(database_url, "0008") == "0008"
    engine = get_engine(database_url)
    with engine.begin() as conn:
        conn.execute(tables.stock_quote.insert(), list(old_quotes.values()))
        conn.execute(tables.trade_tick.insert(), [*old_trades, binance])

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), format="{message}")
    try:
        assert upgrade(database_url) == head_revision()
    finally:
        logger.remove(sink)
    inferred = sum(t["inferred_side"] is not None for t in trades)
    assert inferred >= 10  # the recording's matches are at the bid or the ask
    assert any(
        f"migration 0009: {len(trades)} SSI trades changed" in line
        and f"{inferred} with an inferred side" in line
        and f"{len(quotes)} stock_quote rows changed" in line
        for line in lines
    ), lines

    stored_quotes, stored_trades = _stored(database_url)
    assert stored_quotes == quotes  # exactly what the feed stores today, extra included
    by_key = {(t["symbol"], t["trade_id"]): t for t in stored_trades if t["source"] == "ssi"}
    assert len(by_key) == len(trades) == 17
    for trade in trades:
        stored = by_key[(trade["symbol"], trade["trade_id"])]
        assert (stored["side"], stored["inferred_side"]) == ("none", trade["inferred_side"])
    (kept,) = [t for t in stored_trades if t["source"] == "binance"]
    assert (kept["side"], kept["inferred_side"]) == ("buy", None)

    # Once corrected, nothing to change again; down and up again keep every field.
    assert downgrade(database_url, "0008") == "0008"
    q = tables.stock_quote.c
    with engine.connect() as conn:
        rows = conn.execute(select(q.symbol, q.quoted_at, q.last_side, q.extra)).all()
    assert len(rows) == len(old_quotes)
    for symbol, quoted_at, last_side, extra in rows:
        old = old_quotes[(symbol, quoted_at)]
        assert last_side is None and extra == {**old["extra"], "66": "s"}
    assert upgrade(database_url) == head_revision()
    assert _stored(database_url)[0] == quotes
