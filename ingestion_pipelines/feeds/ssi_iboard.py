"""SSI iBoard price board: pipe-delimited board frames → `stock_quote`; trades derived from rises of
the cumulative matched volume (the board carries no trade ids)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
from pydantic import Field
from sqlalchemy import func, select

from ingestion_pipelines.feeds.base import Feed
from ingestion_pipelines.feeds.protocol import NOTHING, Parsed, ParseError
from ingestion_pipelines.storage.tables import stock_quote
from ingestion_pipelines.values import non_negative_exact
from ingestion_pipelines.workers import FeedSettings

SOURCE = "ssi"
ICT = timezone(timedelta(hours=7), "ICT")
TOPIC = "stockRealtimeBySymbolsAndBoards"
_QUOTE_FIELDS = {  # column: 0-based field index (see shared/recordings/README.md)
    "last_price": 42,
    "last_volume": 43,
    "average_price": 47,
    "cumulative_volume": 54,
    "cumulative_value": 55,
    "ceiling_price": 59,
    "floor_price": 60,
    "reference_price": 61,
    **{f"bid{i}_price": 2 + 2 * (i - 1) for i in (1, 2, 3)},
    **{f"bid{i}_volume": 3 + 2 * (i - 1) for i in (1, 2, 3)},
    **{f"ask{i}_price": 22 + 2 * (i - 1) for i in (1, 2, 3)},
    **{f"ask{i}_volume": 23 + 2 * (i - 1) for i in (1, 2, 3)},
}
_SIDES = {"b": "buy", "s": "sell"}


class SsiIboardSettings(FeedSettings):
    base_url: str = "wss://iboard-pushstream.ssi.com.vn"
    symbols: list[str] = Field(default_factory=lambda: ["VCB", "FPT", "MBB"])
    boards: list[str] = Field(default_factory=lambda: ["MAIN"])


def trade_id(trading_date: str, cumulative_volume: int) -> int:
    """Deterministic: the ICT trading date and the cumulative volume after the trade."""
    return int(trading_date) * 10**11 + cumulative_volume


def _decimal(text: str) -> Decimal | None:
    return non_negative_exact(text) if text else None


class SsiIboard(Feed):
    worker_id = "ssi_iboard"
    description = "SSI iBoard board snapshots (stock_quote) and the trades they reveal (trade_tick)"
    tables = ("stock_quote", "trade_tick")
    Settings = SsiIboardSettings

    source = SOURCE
    headers: dict[str, str] = {"Origin": "https://iboard.ssi.com.vn"}
    max_connection_age_s = None
    # Silent outside trading hours (and on holidays): no time-window freshness policy; the
    # heartbeat check still says whether the sidecar is alive.
    freshness_fail_s = None

    def __init__(self) -> None:
        # (symbol) -> (ICT trading date, cumulative matched volume) of the last frame seen
        self._volume: dict[str, tuple[str, int]] = {}

    @staticmethod
    def url(settings: SsiIboardSettings) -> str:
        return f"{settings.base_url}/realtime"

    @staticmethod
    def subscribe_messages(settings: SsiIboardSettings) -> list[str]:
        message = {
            "type": "sub",
            "topic": TOPIC,
            "variables": {
                "symbols": [s.upper() for s in settings.symbols],
                "boardIds": settings.boards,
            },
            "component": "priceTableEquities",
        }
        return [orjson.dumps(message).decode()]

    def restore(self, engine, settings: SsiIboardSettings) -> None:
        """Resume trade derivation from today's last stored cumulative volume per symbol."""
        today = datetime.now(ICT).replace(hour=0, minute=0, second=0, microsecond=0)
        query = (
            select(stock_quote.c.symbol, func.max(stock_quote.c.cumulative_volume))
            .where(stock_quote.c.quoted_at >= today.astimezone(UTC))
            .group_by(stock_quote.c.symbol)
        )
        with engine.connect() as conn:
            for symbol, volume in conn.execute(query):
                if volume is not None:
                    self._volume[symbol] = (today.strftime("%Y%m%d"), int(Decimal(volume)))

    def parse(self, raw: bytes, received_at: datetime) -> Parsed:
        if not raw.startswith(b"MAIN|") and b"|" not in raw[:16]:
            if raw.startswith(b"Subscribed") or raw.startswith(b"{"):
                return NOTHING  # acknowledgements
            raise ParseError("neither a board frame nor an acknowledgement")
        try:
            fields = raw.decode().split("|")
            if len(fields) < 102 or not fields[1].startswith("S#"):
                raise ParseError(f"board frame with {len(fields)} fields, expected 102")
            symbol = fields[1][2:]
            quoted_at = datetime.fromtimestamp(int(fields[101]) / 1000, UTC)
            quote: dict[str, Any] = {
                "symbol": symbol,
                "quoted_at": quoted_at,
                "board": fields[0],
                "exchange": fields[45] or None,
                "last_side": _SIDES.get(fields[66]),
                **{col: _decimal(fields[i]) for col, i in _QUOTE_FIELDS.items()},
            }
        except ParseError:
            raise
        except (ValueError, ArithmeticError, IndexError) as exc:
            raise ParseError(f"bad board frame: {type(exc).__name__}: {exc}") from None
        parsed = Parsed({"stock_quote": [quote]})
        volume = quote["cumulative_volume"]
        if volume is None:
            return parsed
        day = quoted_at.astimezone(ICT).strftime("%Y%m%d")
        volume = int(volume)
        previous = self._volume.get(symbol)
        if previous is None or previous[0] != day or volume > previous[1]:
            self._volume[symbol] = (day, volume)
        if previous is not None and previous[0] == day and volume > previous[1]:
            if quote["last_price"] is None or quote["last_side"] is None:
                raise ParseError("cumulative volume rose without a last price and side")
            parsed.add(
                "trade_tick",
                {
                    "source": SOURCE,
                    "symbol": symbol,
                    "trade_id": trade_id(day, volume),
                    "price": quote["last_price"],
                    "quantity": Decimal(volume - previous[1]),
                    "side": quote["last_side"],
                    "traded_at": quoted_at,
                    "received_at": received_at,
                },
            )
        return parsed
