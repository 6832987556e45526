"""Binance Spot trades: combined trade streams, gaps filled from `GET /api/v3/historicalTrades`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

import orjson
from pydantic import Field

from ingestion_pipelines.config.workers import FeedSettings
from ingestion_pipelines.core.values import positive_exact
from ingestion_pipelines.feeds.base import Feed
from ingestion_pipelines.feeds.protocol import NOTHING, Parsed, ParseError
from ingestion_pipelines.storage.table_policy import TRADES

SOURCE = "binance"


class BinanceTradesSettings(FeedSettings):
    """Where and what the Binance trade feed subscribes to."""

    base_url: str = "wss://stream.binance.com:9443"
    rest_base_url: str = "https://api.binance.com"
    symbols: list[str] = Field(default_factory=lambda: ["btcusdt", "ethusdt"])
    # A spot pair: base + quote assets, letters and digits (btcusdt, 1000shibusdt).
    symbol_pattern: ClassVar[str] = r"[A-Za-z0-9]{5,20}"


def _trade_row(symbol, trade_id, price, qty, time_ms, buyer_maker, received_at) -> dict[str, Any]:
    return {
        "source": SOURCE,
        "symbol": symbol,
        "trade_id": trade_id,
        "price": positive_exact(price),  # strings on the wire: kept exact
        "quantity": positive_exact(qty),
        # the buyer was the maker, so the taker sold
        "side": "sell" if buyer_maker else "buy",
        "traded_at": datetime.fromtimestamp(time_ms / 1000, UTC),
        "received_at": received_at,
    }


class BinanceTrades(Feed):
    """Binance spot trades (`<symbol>@trade` streams), with REST `/api/v3/historicalTrades` for
    gaps."""

    worker_id = "binance_trades"
    description = "Binance Spot trades (combined websocket streams), every trade id exactly once"
    policies = (TRADES,)
    Settings = BinanceTradesSettings

    source = SOURCE
    headers: dict[str, str] = {}
    max_connection_age_s = 23.5 * 3600  # the server cuts every connection at 24 h
    consecutive_ids = True
    history_limit = 1000

    @staticmethod
    def url(settings: BinanceTradesSettings) -> str:
        """The combined-stream URL for the configured symbols."""
        streams = "/".join(f"{s.lower()}@trade" for s in settings.symbols)
        return f"{settings.base_url}/stream?streams={streams}"

    @staticmethod
    def subscribe_messages(settings: BinanceTradesSettings) -> list[str]:
        """The SUBSCRIBE message(s) sent after connecting."""
        return []  # the streams are in the URL

    @staticmethod
    def parse(raw: bytes, received_at: datetime) -> Parsed:
        """One websocket frame as trade rows (or a reject, or nothing for control replies)."""
        try:
            message = orjson.loads(raw)
            data = message.get("data", message)
            event = data.get("e")
            if event == "trade":
                if type(data["t"]) is not int or type(data["m"]) is not bool:
                    raise ParseError("trade id must be an integer and m a boolean")
                try:
                    row = _trade_row(
                        data["s"],
                        data["t"],
                        data["p"],
                        data["q"],
                        data["T"],
                        data["m"],
                        received_at,
                    )
                except (ValueError, ArithmeticError) as exc:  # an impossible price or quantity
                    key = {"source": SOURCE, "symbol": data["s"], "trade_id": data["t"]}
                    raise ParseError(
                        f"trade {data['s']} #{data['t']}: {exc}", record_key=key
                    ) from None
                return Parsed({"trade_tick": [row]})
        except ParseError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, ArithmeticError) as exc:
            raise ParseError(f"not a trade event: {type(exc).__name__}: {exc}") from None
        if event == "serverShutdown":
            return Parsed(reconnect="serverShutdown")
        if event is None and "id" in message and ("result" in message or "code" in message):
            return NOTHING  # a reply to a control message
        raise ParseError(f"unknown event {event!r}")

    @staticmethod
    def history_request(settings: BinanceTradesSettings, symbol: str, from_id: int, limit: int):
        """The REST request that refills a gap of trades from `from_id`."""
        query = urlencode({"symbol": symbol.upper(), "fromId": from_id, "limit": limit})
        return f"{settings.rest_base_url.rstrip('/')}/api/v3/historicalTrades?{query}"

    @staticmethod
    def history_rows(symbol: str, payload: bytes, received_at: datetime) -> list[dict[str, Any]]:
        """The trade rows of one REST history answer."""
        return [
            _trade_row(
                symbol.upper(),
                r["id"],
                r["price"],
                r["qty"],
                r["time"],
                r["isBuyerMaker"],
                received_at,
            )
            for r in orjson.loads(payload)
        ]
