"""SSI iBoard price board: pipe-delimited board frames → `stock_quote`; trades derived from rises of
the cumulative matched volume (the board carries no trade ids)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import orjson
from pydantic import Field
from sqlalchemy import func, select

from ingestion_pipelines.feeds.base import Feed
from ingestion_pipelines.feeds.protocol import NOTHING, Parsed, ParseError
from ingestion_pipelines.storage import types as column_types
from ingestion_pipelines.storage.tables import stock_quote
from ingestion_pipelines.timezones import ICT
from ingestion_pipelines.values import non_negative_exact
from ingestion_pipelines.workers import FeedSettings

SOURCE = "ssi"
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
# Side of the last match: equities send b/s; the derivatives board (VN30F...) sends bu ("buy up":
# the buyer took the offer) / sd ("sell down"), as SSI's own derivatives quote API does. An
# auction match (ATO/ATC) has no aggressor: "unknown" or empty.
_SIDES = {"b": "buy", "s": "sell", "bu": "buy", "sd": "sell"}
NO_AGGRESSOR = "none"  # trade_tick.side of a match without a taker side (auction)
STAMP_INDEX = 101  # epoch ms of the server, when the frame carries it
# Known frame lengths: 102 fields end with the server stamp; 97 fields (published captures of
# several SSI client libraries) stop before it, the positions up to there being the same.
TIME_SOURCE_BY_LENGTH = {102: "source", 97: "receipt"}
_READ_INDEXES = {0, 1, 45, 66, STAMP_INDEX, *_QUOTE_FIELDS.values()}


class SsiIboardSettings(FeedSettings):
    """Where and what the SSI iBoard feed subscribes to."""

    base_url: str = "wss://iboard-pushstream.ssi.com.vn"
    symbols: list[str] = Field(default_factory=lambda: ["VCB", "FPT", "MBB"])
    # A listed code: 3-letter stocks, 8-character ETFs and covered warrants, futures (VN30F2605).
    symbol_pattern: ClassVar[str] = r"[A-Za-z0-9]{3,12}"
    boards: list[str] = Field(default_factory=lambda: ["MAIN"])


def trade_id(trading_date: str, cumulative_volume: int) -> int:
    """Deterministic: the ICT trading date and the cumulative volume after the trade."""
    return int(trading_date) * 10**11 + cumulative_volume


def _decimal(text: str) -> Decimal | None:
    return non_negative_exact(text) if text else None


def board_quote(fields: list[str], received_at: datetime) -> dict[str, Any]:
    """A `stock_quote` row from a board frame's fields, read by position where present. A frame
    without the server stamp takes its time from receipt (`time_source` says which)."""
    time_source = TIME_SOURCE_BY_LENGTH.get(len(fields))
    if time_source is None:
        known = ", ".join(str(n) for n in sorted(TIME_SOURCE_BY_LENGTH))
        raise ParseError(f"board frame with {len(fields)} fields (known lengths: {known})")
    if not fields[1].startswith("S#"):
        raise ParseError(f"board frame whose field 1 is not S#<symbol>: {fields[1][:32]!r}")
    if time_source == "source":
        quoted_at = datetime.fromtimestamp(int(fields[STAMP_INDEX]) / 1000, UTC)
    else:
        quoted_at = received_at.astimezone(UTC)
    side_code = fields[66]
    extra = {str(i): v for i, v in enumerate(fields) if v and i not in _READ_INDEXES}
    if side_code and side_code not in _SIDES:
        extra["66"] = side_code  # "unknown" (auction) or a code not seen yet: kept verbatim
    return {
        "symbol": fields[1][2:],
        "quoted_at": quoted_at,
        "board": fields[0],
        "exchange": fields[45] or None,
        "last_side": _SIDES.get(side_code),
        **{col: _decimal(fields[i]) for col, i in _QUOTE_FIELDS.items()},
        "time_source": time_source,
        "extra": column_types.json_text(extra)
        if extra
        else None,  # text: the writer's hot path binds it as is
    }


class SsiIboard(Feed):
    """SSI iBoard's pushstream: board frames of matched trades and quotes."""

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
        """The pushstream URL."""
        return f"{settings.base_url}/realtime"

    @staticmethod
    def subscribe_messages(settings: SsiIboardSettings) -> list[str]:
        """The subscribe message(s) for the configured boards and symbols."""
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
        """One pushstream frame as trade/quote rows (or a reject, or nothing for control frames)."""
        if not raw.startswith(b"MAIN|") and b"|" not in raw[:16]:
            if raw.startswith(b"Subscribed") or raw.startswith(b"{"):
                return NOTHING  # acknowledgements
            raise ParseError("neither a board frame nor an acknowledgement")
        try:
            fields = raw.decode().split("|")
            quote = board_quote(fields, received_at)
        except ParseError:
            raise
        except (ValueError, ArithmeticError, IndexError) as exc:
            raise ParseError(f"bad board frame: {type(exc).__name__}: {exc}") from None
        symbol, quoted_at = quote["symbol"], quote["quoted_at"]
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
            if quote["last_price"] is None:
                raise ParseError("cumulative volume rose without a last price")
            parsed.add(
                "trade_tick",
                {
                    "source": SOURCE,
                    "symbol": symbol,
                    "trade_id": trade_id(day, volume),
                    "price": quote["last_price"],
                    "quantity": Decimal(volume - previous[1]),
                    "side": quote["last_side"] or NO_AGGRESSOR,
                    "traded_at": quoted_at,
                    "received_at": received_at,
                },
            )
        return parsed
