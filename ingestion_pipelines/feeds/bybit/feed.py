"""Bybit Spot public trades (v5 `publicTrade.{symbol}` on `/v5/public/spot`): the protocol
(`BybitTradesProtocol`) and its worker (`BybitTrades`, `bybit_trades`). What Bybit
documents (v5 "WebSocket Stream > Public > Trade" and "Connect"; see `data/PROVENANCE.md`):

- a push holds up to 1024 trades sorted by match time; `S` is the taker's side (`Buy`/`Sell`),
  `i` the trade id (a string: decimal on Spot, a UUID on derivatives and options), `seq` the
  "cross sequence" (shared by several messages, not one number per trade);
- no contiguity of trade ids is documented and the REST `GET /v5/market/recent-trade` returns only
  the latest trades (Spot: at most 60) with no paging from an id: the feed cannot detect gaps
  from ids nor fill them, so it declares no consecutive ids;
- keep-alive: send `{"op":"ping"}` every 20 s (recommended); the answer is
  `{"success":true,"ret_msg":"pong",...,"op":"ping"}`;
- limits: Spot takes at most 10 args per subscribe request; the args of one public connection
  must not exceed 21,000 characters in all; "do not build over 500 connections in 5
  minutes", counted per WebSocket domain.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
from pydantic import Field

from ingestion_pipelines.config.workers import FeedSettings
from ingestion_pipelines.core.values import positive_exact
from ingestion_pipelines.feeds.base import Feed
from ingestion_pipelines.feeds.protocol import NOTHING, Parsed, ParseError, trade_rows
from ingestion_pipelines.storage.table_policy import TRADES

SOURCE = "bybit"
TOPIC = "publicTrade"
MAX_ARGS_PER_REQUEST = 10  # Spot
MAX_ARGS_CHARS = 21_000  # per public connection, all requests together
MAX_TRADE_ID = 2**63 - 1  # trade_tick.trade_id is a BIGINT
_SIDES = {"Buy": "buy", "Sell": "sell"}
_KNOWN = frozenset({"i", "T", "p", "v", "S", "s"})


class BybitTradesSettings(FeedSettings):
    """Where and what the Bybit trade feed subscribes to."""

    base_url: str = "wss://stream.bybit.com"
    symbols: list[str] = Field(default_factory=lambda: ["BTCUSDT", "ETHUSDT"])
    symbol_pattern: ClassVar[str] = r"[A-Z0-9]{2,25}"


def _trade_id(value: Any) -> int:
    if (
        not isinstance(value, str)
        or not (value.isascii() and value.isdigit())
        or int(value) > MAX_TRADE_ID
    ):
        raise ValueError(f"trade id must be a decimal string within BIGINT: {value!r:.40}")
    return int(value)


def _time_ms(value: Any) -> datetime:
    if type(value) is not int or not 0 <= value < 10**14:
        raise ValueError(f"T must be milliseconds as an integer: {value!r:.40}")
    return datetime.fromtimestamp(value / 1000, UTC)


def trade_row(trade: dict[str, Any], received_at: datetime) -> dict[str, Any]:
    """One trade of a push as a `trade_tick` row; `ValueError` when a field is missing or bad."""
    side = _SIDES.get(trade.get("S"))  # type: ignore[arg-type]
    if side is None:
        raise ValueError(f"S must be Buy or Sell, got {trade.get('S')!r:.20}")
    symbol = trade.get("s")
    if not isinstance(symbol, str) or not symbol:
        raise ValueError("no symbol (s)")
    extra = {k: v for k, v in trade.items() if k not in _KNOWN}
    return {
        "source": SOURCE,
        "symbol": symbol,
        "trade_id": _trade_id(trade.get("i")),
        "price": positive_exact(trade.get("p")),
        "quantity": positive_exact(trade.get("v")),
        "side": side,  # the taker's side, as Bybit reports it
        "traded_at": _time_ms(trade.get("T")),
        "received_at": received_at,
        "extra": extra or None,
    }


def _rows(trades: Any, received_at: datetime) -> list[dict[str, Any]]:
    return trade_rows(
        trades,
        lambda trade: trade_row(trade, received_at),
        lambda trade: {"source": SOURCE, "symbol": trade.get("s"), "trade_id": trade.get("i")},
    )


def _reply(message: dict[str, Any]) -> Parsed:
    if message.get("success") is False:
        raise ParseError(
            f"Bybit refused {message.get('op')!r:.20}: {message.get('ret_msg')!r:.200}"
        )
    return NOTHING  # a subscribe acknowledgement or a pong


class BybitTradesProtocol(Feed):
    """Bybit Spot trades (protocol only)."""

    description = "Bybit Spot trades (publicTrade topic)"
    tables = ("trade_tick",)
    Settings = BybitTradesSettings

    source = SOURCE
    headers: dict[str, str] = {}
    consecutive_ids = False  # ids are not documented as consecutive; no REST paging by id
    keepalive_message = '{"op":"ping"}'
    keepalive_interval_s = 20.0

    @staticmethod
    def url(settings: BybitTradesSettings) -> str:
        """The Spot public endpoint."""
        return f"{settings.base_url.rstrip('/')}/v5/public/spot"

    @staticmethod
    def subscribe_messages(settings: BybitTradesSettings) -> list[str]:
        """Subscribe requests of at most 10 topics each, 21,000 characters of args in all."""
        topics = [f"{TOPIC}.{symbol.upper()}" for symbol in settings.symbols]
        if sum(len(t) for t in topics) > MAX_ARGS_CHARS:
            raise ValueError(f"the topics exceed Bybit's {MAX_ARGS_CHARS} characters a connection")
        return [
            orjson.dumps({"op": "subscribe", "args": topics[i : i + MAX_ARGS_PER_REQUEST]}).decode()
            for i in range(0, len(topics), MAX_ARGS_PER_REQUEST)
        ]

    @staticmethod
    def parse(raw: bytes, received_at: datetime) -> Parsed:
        """One frame: trade rows, nothing (acknowledgements, pong), or a reject."""
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"not JSON: {exc}") from None
        if not isinstance(message, dict):
            raise ParseError("a frame that is not an object")
        if "op" in message and "topic" not in message:
            return _reply(message)
        topic = message.get("topic")
        if not isinstance(topic, str) or not topic.startswith(f"{TOPIC}."):
            raise ParseError(f"not a publicTrade push (topic {topic!r:.40})")
        return Parsed({"trade_tick": _rows(message.get("data"), received_at)})


class BybitTrades(BybitTradesProtocol):
    """`bybit_trades`: the Bybit protocol as a sidecar worker writing `trade_tick` (no gap
    tracking: its trade ids are not documented as consecutive)."""

    worker_id = "bybit_trades"
    policies = (TRADES,)
