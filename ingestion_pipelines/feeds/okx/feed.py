"""OKX public trades: the `trades-all` channel (one trade a push), gaps filled from REST history.

The protocol (`OkxTradesProtocol`) and its worker (`OkxTrades`, `okx_trades`).
What OKX documents (docs-v5, "WS / All trades channel", "WS / Trades channel", the WebSocket
overview; see `data/PROVENANCE.md`):

- `trades-all` is served on `/ws/v5/business` and pushes every trade alone; `trades` on
  `/ws/v5/public` aggregates the fills of one taker order at one price (`count` > 1, `tradeId` the
  last of them): it cannot give one row per trade id, so it is not used, and an aggregated push is
  refused rather than stored as if it were one trade;
- `side` is the taker's side (`buy`/`sell`) on `trades` and on `GET /market/trades`; `trades-all`
  names it "trade direction" with the same values and the same documented example;
- `tradeId` is a decimal string. Contiguity per instrument is not stated as such; the `trades`
  aggregation note says a push with `tradeId` 123 and `count` 3 holds trades 121, 122 and 123, and
  the recorded BTC-USDT session has 69 consecutive ids. The feed declares consecutive ids, so a
  jump is treated as a gap and refilled from `GET /api/v5/market/history-trades` (`type=1`:
  paging by trade id, `after` = records older than that id, at most 100 a page);
- keep-alive: the server cuts a connection idle for 30 s; send the text `ping` when nothing came
  for less than that and expect the text `pong`;
- limits ("Connect" and "Subscribe" of the WebSocket overview): "the total length of multiple
  channels cannot exceed 64 KB" (one subscribe request); "the total number of
  'subscribe'/'unsubscribe'/'login' requests per connection is limited to 480 times per hour"
  (one or two requests per connection here, sent again only on a new connection); "connection
  limit: 3 requests per second (based on IP)" is about opening connections, which the sidecar's
  sharding paces; no cap on the number of channels per connection is documented. A `notice`
  event (code 64008) announces a cut for a service upgrade: reconnect.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

import orjson
from pydantic import Field

from ingestion_pipelines.config.workers import FeedSettings
from ingestion_pipelines.core.values import positive_exact
from ingestion_pipelines.feeds.base import Feed
from ingestion_pipelines.feeds.protocol import NOTHING, Parsed, ParseError, trade_rows
from ingestion_pipelines.storage.table_policy import TRADES

SOURCE = "okx"
CHANNEL = "trades-all"
MAX_ARGS_BYTES = 64 * 1024  # "the total length of multiple channels cannot exceed 64 KB"
MAX_SUBSCRIBE_REQUESTS = 480  # subscribe/unsubscribe/login requests per connection per hour
HISTORY_LIMIT = 100  # GET /api/v5/market/history-trades: at most 100 a page
MAX_TRADE_ID = 2**63 - 1  # trade_tick.trade_id is a BIGINT
_SIDES = ("buy", "sell")
_KNOWN = frozenset({"instId", "tradeId", "px", "sz", "side", "ts"})


class OkxTradesSettings(FeedSettings):
    """Where and what the OKX trade feed subscribes to."""

    base_url: str = "wss://ws.okx.com:8443"
    rest_base_url: str = "https://www.okx.com"
    # gap filling pages: OKX limits `GET /api/v5/market/history-trades` to 20 requests per 2 s
    # per IP; half of that
    rate_limit_per_s: float | None = Field(5.0, gt=0, le=100)
    symbols: list[str] = Field(default_factory=lambda: ["BTC-USDT", "ETH-USDT"])
    # An OKX instrument id: upper-case parts joined by dashes (BTC-USDT, BTC-USDT-SWAP).
    symbol_pattern: ClassVar[str] = r"[A-Z0-9]{1,15}(-[A-Z0-9]{1,15}){1,4}"


def _trade_id(value: Any) -> int:
    if (
        not isinstance(value, str)
        or not (value.isascii() and value.isdigit())
        or int(value) > MAX_TRADE_ID
    ):
        raise ValueError(f"tradeId must be a decimal string within BIGINT: {value!r:.40}")
    return int(value)


def _time_ms(value: Any) -> datetime:
    if not isinstance(value, str) or not value.isdigit() or len(value) > 15:
        raise ValueError(f"ts must be milliseconds as a decimal string: {value!r:.40}")
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def trade_row(trade: dict[str, Any], received_at: datetime) -> dict[str, Any]:
    """One trade (of a push or of the REST history) as a `trade_tick` row; `ValueError` if bad."""
    if trade.get("count", "1") != "1":
        raise ValueError(f"an aggregated push (count {trade['count']!r:.20}), not one trade")
    side = trade.get("side")
    if side not in _SIDES:
        raise ValueError(f"side must be buy or sell, got {side!r:.20}")
    symbol = trade.get("instId")
    if not isinstance(symbol, str) or not symbol:
        raise ValueError("no instId")
    extra = {k: v for k, v in trade.items() if k not in _KNOWN}
    return {
        "source": SOURCE,
        "symbol": symbol,
        "trade_id": _trade_id(trade.get("tradeId")),
        "price": positive_exact(trade.get("px")),
        "quantity": positive_exact(trade.get("sz")),
        "side": side,  # the taker's side, as OKX reports it
        "traded_at": _time_ms(trade.get("ts")),
        "received_at": received_at,
        "extra": extra or None,
    }


def _rows(trades: Any, received_at: datetime) -> list[dict[str, Any]]:
    return trade_rows(
        trades,
        lambda trade: trade_row(trade, received_at),
        lambda trade: {
            "source": SOURCE,
            "symbol": trade.get("instId"),
            "trade_id": trade.get("tradeId"),
        },
    )


def _event(message: dict[str, Any]) -> Parsed:
    event = message["event"]
    if event in ("subscribe", "unsubscribe"):
        return NOTHING
    if event == "notice":  # e.g. 64008: the connection will be closed for a service upgrade
        return Parsed(reconnect=f"notice {message.get('code')}: {message.get('msg')}")
    if event == "error":
        raise ParseError(f"OKX refused a request: {message.get('code')} {message.get('msg')}")
    raise ParseError(f"unknown event {event!r:.40}")


class OkxTradesProtocol(Feed):
    """OKX spot/derivative trades from the `trades-all` channel (protocol only)."""

    description = "OKX trades (trades-all channel), every trade id exactly once"
    tables = ("trade_tick",)
    Settings = OkxTradesSettings

    source = SOURCE
    headers: dict[str, str] = {}
    consecutive_ids = True
    history_limit = HISTORY_LIMIT
    keepalive_message = "ping"  # text, sent after `keepalive_interval_s` without a message
    keepalive_interval_s = 25.0  # the server cuts at 30 s of silence

    @staticmethod
    def url(settings: OkxTradesSettings) -> str:
        """The business endpoint, where `trades-all` is served."""
        return f"{settings.base_url.rstrip('/')}/ws/v5/business"

    @staticmethod
    def subscribe_messages(settings: OkxTradesSettings) -> list[str]:
        """Subscribe requests for every symbol, each under OKX's 64 KB of args."""
        messages: list[str] = []
        batch: list[dict[str, str]] = []
        for symbol in settings.symbols:
            arg = {"channel": CHANNEL, "instId": symbol}
            if batch and len(_subscribe([*batch, arg])) > MAX_ARGS_BYTES:
                messages.append(_subscribe(batch))
                batch = []
            batch.append(arg)
        if batch:
            messages.append(_subscribe(batch))
        if len(messages) > MAX_SUBSCRIBE_REQUESTS:
            raise ValueError(f"{len(messages)} subscribe requests exceed OKX's 480 a connection")
        return messages

    @staticmethod
    def parse(raw: bytes, received_at: datetime) -> Parsed:
        """One frame: trade rows, nothing (pong, acknowledgements), a reconnect, or a reject."""
        if raw in (b"pong", "pong"):
            return NOTHING
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"not JSON: {exc}") from None
        if not isinstance(message, dict):
            raise ParseError("a frame that is not an object")
        if "event" in message:
            return _event(message)
        arg = message.get("arg")
        channel = arg.get("channel") if isinstance(arg, dict) else None
        if channel not in (CHANNEL, "trades"):
            raise ParseError(f"not a trades push (channel {channel!r:.40})")
        return Parsed({"trade_tick": _rows(message.get("data"), received_at)})

    @staticmethod
    def history_request(settings: OkxTradesSettings, symbol: str, from_id: int, limit: int) -> str:
        """The REST page holding trade ids `from_id` .. `from_id + limit - 1` (ids older than
        `after`, newest first)."""
        limit = min(limit, HISTORY_LIMIT)
        query = urlencode({"instId": symbol, "type": 1, "after": from_id + limit, "limit": limit})
        return f"{settings.rest_base_url.rstrip('/')}/api/v5/market/history-trades?{query}"

    @staticmethod
    def history_rows(symbol: str, payload: bytes, received_at: datetime) -> list[dict[str, Any]]:
        """The trade rows of one REST history answer, oldest first."""
        body = orjson.loads(payload)
        if not isinstance(body, dict) or body.get("code") != "0":
            raise ParseError(f"OKX history for {symbol} failed: {str(body)[:120]}")
        rows = [trade_row(trade, received_at) for trade in body.get("data") or []]
        return sorted(rows, key=lambda row: row["trade_id"])


def _subscribe(args: list[dict[str, str]]) -> str:
    return orjson.dumps({"op": "subscribe", "args": args}).decode()


class OkxTrades(OkxTradesProtocol):
    """`okx_trades`: the OKX protocol as a sidecar worker writing `trade_tick`."""

    worker_id = "okx_trades"
    policies = (TRADES,)
