"""SSI iBoard price board: pipe-delimited board frames → `stock_quote`; trades derived from rises of
the cumulative matched volume (the board carries no trade ids)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import orjson
from pydantic import Field
from sqlalchemy import func, select

from ingestion_pipelines.config.workers import FeedSettings
from ingestion_pipelines.core.timezones import ICT
from ingestion_pipelines.core.values import non_negative_exact, quote_rule_side
from ingestion_pipelines.feeds.base import Feed
from ingestion_pipelines.feeds.protocol import NOTHING, Parsed, ParseError
from ingestion_pipelines.storage import types as column_types
from ingestion_pipelines.storage.table_policy import QUOTES, TRADES
from ingestion_pipelines.storage.tables import SSI_QUOTE_COLUMNS, stock_quote
from ingestion_pipelines.storage.types import ExactDecimal

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
    **{name: i for name, kind, i in SSI_QUOTE_COLUMNS if kind is ExactDecimal},
}
# Text fields, verbatim (None when empty): the exchange (hose, hnx, upcom, vnf), the trading
# session (LO, ATO, ATC...; often empty) and the instrument type of field 66.
_TEXT_FIELDS = {
    "exchange": 45,
    **{name: i for name, kind, i in SSI_QUOTE_COLUMNS if kind is not ExactDecimal},
}
# Field 66 is the instrument type, not a side (an earlier reading took `s` for "sell"): the
# board frame reports no aggressor side at all. Its codes, as the public parsers name them:
INSTRUMENT_TYPES = {
    "s": "stock",
    "e": "ETF",
    "w": "covered warrant",
    "b": "bond",
    "f": "futures",
    "i": "index",
    "m": "fund",
}
NO_AGGRESSOR = "none"  # trade_tick.side of every board-derived trade: the board reports none
AUCTION_SESSIONS = frozenset({"ATO", "ATC"})  # one price for all: no taker side to infer
STAMP_INDEX = 101  # epoch ms of the server, when the frame carries it
# Known frame lengths: 102 fields end with the server stamp; 97 fields (published captures of
# several SSI client libraries) stop before it, the positions up to there being the same.
TIME_SOURCE_BY_LENGTH = {102: "source", 97: "receipt"}
_READ_INDEXES = {0, 1, STAMP_INDEX, *_QUOTE_FIELDS.values(), *_TEXT_FIELDS.values()}


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
    extra = {str(i): v for i, v in enumerate(fields) if v and i not in _READ_INDEXES}
    return {
        "symbol": fields[1][2:],
        "quoted_at": quoted_at,
        "board": fields[0],
        "last_side": None,  # the board reports no side
        **{col: _decimal(fields[i]) for col, i in _QUOTE_FIELDS.items()},
        **{col: fields[i] or None for col, i in _TEXT_FIELDS.items()},
        "time_source": time_source,
        "extra": column_types.json_text(extra)
        if extra
        else None,  # text: the writer's hot path binds it as is
    }


def inferred_side(quote: dict[str, Any], book: tuple[Decimal | None, Decimal | None] | None):
    """The side a board-derived trade is inferred to have had: the quote rule applied to the
    best bid and ask of the symbol's previous frame (`book`); None in an auction session,
    without a previous frame, or when the price was inside the spread."""
    if book is None or quote["trading_session"] in AUCTION_SESSIONS:
        return None
    return quote_rule_side(quote["last_price"], *book)


class SsiIboard(Feed):
    """SSI iBoard's pushstream: board frames of matched trades and quotes."""

    worker_id = "ssi_iboard"
    description = "SSI iBoard board snapshots (stock_quote) and the trades they reveal (trade_tick)"
    policies = (QUOTES, TRADES)
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
        # (symbol) -> (ICT trading date, (best bid, best ask)) of the last frame seen
        self._book: dict[str, tuple[str, tuple[Decimal | None, Decimal | None]]] = {}

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
        """Resume trade derivation from today's last stored cumulative volume per symbol, and
        side inference from the best bid and ask of its latest stored frame."""
        today = datetime.now(ICT).replace(hour=0, minute=0, second=0, microsecond=0)
        day, since = today.strftime("%Y%m%d"), today.astimezone(UTC)
        q = stock_quote.c
        volumes = (
            select(q.symbol, func.max(q.cumulative_volume))
            .where(q.quoted_at >= since)
            .group_by(q.symbol)
        )
        latest = (
            select(q.symbol, func.max(q.quoted_at).label("at"))
            .where(q.quoted_at >= since)
            .group_by(q.symbol)
            .subquery()
        )
        books = select(q.symbol, q.bid1_price, q.ask1_price).join(
            latest, (q.symbol == latest.c.symbol) & (q.quoted_at == latest.c.at)
        )
        with engine.connect() as conn:
            for symbol, volume in conn.execute(volumes):
                if volume is not None:
                    self._volume[symbol] = (day, int(Decimal(volume)))
            for symbol, bid, ask in conn.execute(books):
                self._book[symbol] = (day, (bid, ask))

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
        day = quoted_at.astimezone(ICT).strftime("%Y%m%d")
        book = self._book.get(symbol)
        self._book[symbol] = (day, (quote["bid1_price"], quote["ask1_price"]))
        volume = quote["cumulative_volume"]
        if volume is None:
            return parsed
        volume = int(volume)
        previous = self._volume.get(symbol)
        if previous is None or previous[0] != day or volume > previous[1]:
            self._volume[symbol] = (day, volume)
        if previous is not None and previous[0] == day and volume > previous[1]:
            if quote["last_price"] is None:
                raise ParseError("cumulative volume rose without a last price")
            before = book[1] if book is not None and book[0] == day else None
            parsed.add(
                "trade_tick",
                {
                    "source": SOURCE,
                    "symbol": symbol,
                    "trade_id": trade_id(day, volume),
                    "price": quote["last_price"],
                    "quantity": Decimal(volume - previous[1]),
                    "side": NO_AGGRESSOR,
                    "inferred_side": inferred_side(quote, before),
                    "traded_at": quoted_at,
                    "received_at": received_at,
                },
            )
        return parsed
