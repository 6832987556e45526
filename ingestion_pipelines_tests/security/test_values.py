"""Item 5: values sane per field, per record. A negative, non-finite or overflowing price or
quantity goes to `dead_letter` with its reason; the good records of the same run land."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from sqlalchemy import select

from ingestion_pipelines.feeds.binance.feed import BinanceTrades
from ingestion_pipelines.feeds.protocol import ParseError
from ingestion_pipelines.feeds.ssi.feed import SsiIboard
from ingestion_pipelines.http_client.resource import HttpClientResource
from ingestion_pipelines.sources.base import source_classes
from ingestion_pipelines.sources.runner import crawl
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema
from ingestion_pipelines.storage.tables import crypto_market_snapshot, dead_letter
from ingestion_pipelines_tests.fakes.http_origin import HttpOrigin, Reply

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
# raw JSON number text, as a hostile server would send it
HOSTILE = {
    "neg-price": ("current_price", "-1"),
    "huge-price": ("current_price", "1e400"),
    "nan-volume": ("total_volume", "NaN"),
    "inf-cap": ("market_cap", "Infinity"),
    "overflow-cap": ("market_cap", "123456789012345678901"),  # 21 digits: over DECIMAL(38,18)
}


def _coin(coin_id: str, price: str = "1.25") -> dict:
    return {
        "id": coin_id,
        "symbol": coin_id[:6],
        "name": coin_id.title(),
        "current_price": f"@{price}@",
        "market_cap": "@1000000.5@",
        "total_volume": "@2500.125@",
        "last_updated": "2026-11-30T07:59:00.000Z",
    }


def _page() -> bytes:
    coins = [_coin(f"coin-{i}", f"{i + 1}.5") for i in range(60)]
    for coin_id, (field, raw) in HOSTILE.items():
        coin = _coin(coin_id)
        coin[field] = f"@{raw}@"
        coins.append(coin)
    text = json.dumps(coins)
    return text.replace('"@', "").replace('@"', "").encode()


def test_impossible_coin_values_are_dead_lettered_per_record(database_url, sqlite_url):
    with HttpOrigin() as origin:
        origin.set("/coins/markets", Reply(200, body=_page()))
        CoingeckoMarkets = source_classes()["coingecko_markets"]  # declared in its defs.yaml
        settings = CoingeckoMarkets.Settings(base_url=origin.url(""), max_pages=1)
        source = CoingeckoMarkets(settings)
        client = HttpClientResource(redis_url="")
        with client.session("coingecko_markets", max_retries=0) as session:
            result = crawl(
                source,
                session=session,
                data_engine=ensure_schema(database_url),
                control_engine=ensure_schema(sqlite_url),
                run_id="r1",
            )
    try:
        assert (result.fetched, result.rejected, result.written.inserted) == (65, 5, 60)
        with ensure_schema(database_url).connect() as conn:
            rows = conn.execute(select(crypto_market_snapshot)).mappings().all()
        assert sorted(r["coin_id"] for r in rows) == sorted(f"coin-{i}" for i in range(60))
        assert {r["price_usd"] for r in rows if r["coin_id"] == "coin-0"} == {Decimal("1.5")}
        with ensure_schema(sqlite_url).connect() as conn:
            letters = conn.execute(select(dead_letter)).mappings().all()
        by_coin = {json.loads(row["payload"])["id"]: row for row in letters}
        assert set(by_coin) == set(HOSTILE)
        for coin_id in HOSTILE:
            letter = by_coin[coin_id]
            assert letter["worker_id"] == "coingecko_markets"
            assert letter["context"]["url"].startswith(origin.url("/coins/markets"))
            assert letter["context"]["record_key"]["coin_id"] == coin_id  # the record's key
        assert "current_price" in by_coin["neg-price"]["reason"]
        assert "negative" in by_coin["neg-price"]["reason"]
        assert "out of range" in by_coin["huge-price"]["reason"]
        assert "out of range" in by_coin["overflow-cap"]["reason"]
    finally:
        dispose_all()


def _trade(price: str, qty: str) -> bytes:
    data = {"e": "trade", "s": "BTCUSDT", "t": 7, "p": price, "q": qty, "T": 1, "m": False}
    return orjson.dumps({"stream": "btcusdt@trade", "data": data})


IMPOSSIBLE_TRADES = [
    ("-1", "1"),
    ("1", "-5"),
    ("0", "1"),
    ("1e400", "1"),
    ("NaN", "1"),
    ("1", "Infinity"),
]


def test_impossible_trades_are_refused_per_frame_and_sane_ones_parse_exactly():
    (row,) = BinanceTrades.parse(_trade("97000.01000000", "0.00012000"), NOW).rows["trade_tick"]
    assert (row["price"], row["quantity"]) == (Decimal("97000.01"), Decimal("0.00012"))
    for price, qty in IMPOSSIBLE_TRADES:
        with pytest.raises(ParseError):
            BinanceTrades.parse(_trade(price, qty), NOW)


def test_an_ssi_board_frame_with_a_negative_price_is_refused():
    fields = [""] * 102
    fields[0], fields[1], fields[101] = "MAIN", "S#VCB", "1764489600000"
    from ingestion_pipelines.feeds.ssi.feed import _QUOTE_FIELDS

    column, index = next(iter(_QUOTE_FIELDS.items()))
    fields[index] = "-5"
    with pytest.raises(ParseError, match="negative"):
        SsiIboard().parse("|".join(fields).encode(), NOW)
    fields[index] = "1e400"
    with pytest.raises(ParseError, match="out of range"):
        SsiIboard().parse("|".join(fields).encode(), NOW)
