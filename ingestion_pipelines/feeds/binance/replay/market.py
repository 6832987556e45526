"""The market the Binance replay serves: its trades (the values both the stream and REST carry),
each symbol's journal and ids, and the deterministic prices and quantities.

Trades are generated with consecutive ids per symbol, prices and quantities (8-decimal strings)
derived from (seed, symbol, id). Every generated trade is journaled, also while no client is
connected and when the server holds it back from the stream, so the journal is the ground truth
REST serves a gap from.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

DEFAULT_BASE_PRICES: dict[str, str] = {
    "BTCUSDT": "43210.12",
    "ETHUSDT": "2345.67",
    "BNBUSDT": "312.45",
    "SOLUSDT": "98.76",
}
_CENT = Decimal("0.01")
_Q8 = Decimal("0.00000001")


def trade_stream(symbol: str) -> str:
    """The trade stream name of a symbol: ``btcusdt@trade``."""
    return f"{symbol.lower()}@trade"


@dataclass(frozen=True, slots=True)
class Trade:
    """One trade as journaled by the server (the values both the stream and REST carry)."""

    symbol: str
    id: int
    price: str  # "43210.12000000"
    qty: str  # "0.51234000"
    quote_qty: str  # price * qty, 8 decimals
    time: int  # trade time, epoch ms (stream "T", REST "time")
    is_buyer_maker: bool  # stream "m", REST "isBuyerMaker"

    def event(self, event_time_ms: int) -> dict[str, Any]:
        """The trade stream payload (``data`` of a combined-stream message)."""
        return {
            "e": "trade",
            "E": event_time_ms,
            "s": self.symbol,
            "t": self.id,
            "p": self.price,
            "q": self.qty,
            "T": self.time,
            "m": self.is_buyer_maker,
            "M": True,
        }

    def rest(self) -> dict[str, Any]:
        """The ``GET /api/v3/historicalTrades`` row."""
        return {
            "id": self.id,
            "price": self.price,
            "qty": self.qty,
            "quoteQty": self.quote_qty,
            "time": self.time,
            "isBuyerMaker": self.is_buyer_maker,
            "isBestMatch": True,
        }


@dataclass
class BenchmarkRun:
    """A benchmark burst: `count` trades of `symbol` with ids `first_id`..`last_id`.

    Each message's ``E`` is the epoch ms at which it was written to the socket, so a consumer
    measures latency as ``receive_time - E``. `done` is set once every message was written to
    every target connection (or the run failed: see `error`).
    """

    symbol: str
    count: int
    rate: float | None
    first_id: int
    last_id: int
    clients: int = 0
    started_at: float | None = None  # time.time()
    finished_at: float | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    # trade id -> the E it was first sent with (epoch ms): latency measured from outside the client
    sent_ms: dict[int, int] = field(default_factory=dict)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the burst was written (or failed); False on timeout."""
        return self.done.wait(timeout)

    @property
    def duration_s(self) -> float | None:
        """Seconds from the first message to the last, once finished."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


class SymbolState:
    """Market state of one symbol (mutated on the server's loop thread under the server lock)."""

    def __init__(self, symbol: str, first_id: int, base_price: str) -> None:
        self.symbol = symbol
        self.stream = trade_stream(symbol)
        self.first_id = first_id
        self.next_id = first_id
        self.base = Decimal(base_price)
        self.journal: list[Trade] = []
        self.skip = 0
        self.skipped: list[int] = []
        self.sent: set[int] = set()
        self.forgotten_before = first_id


def make_trade(seed: int, sym: SymbolState, trade_id: int, t_ms: int) -> Trade:
    """Trade `trade_id` of `sym` at `t_ms`: its price within +-1% of the symbol's base (in cents),
    its quantity 0.00001 .. 2.00000, both fixed by (seed, symbol, id)."""
    digest = hashlib.blake2b(f"{seed}:{sym.symbol}:{trade_id}".encode(), digest_size=8).digest()
    h = int.from_bytes(digest, "big")
    # price within +-1% of the base, in cents; quantity 0.00001 .. 2.00000
    price = (sym.base * (1 + Decimal((h % 20001) - 10000) / 1_000_000)).quantize(_CENT)
    qty = Decimal((h >> 16) % 200000 + 1) / 100000
    return Trade(
        symbol=sym.symbol,
        id=trade_id,
        price=f"{price:.8f}",
        qty=f"{qty:.8f}",
        quote_qty=f"{(price * qty).quantize(_Q8):.8f}",
        time=t_ms,
        is_buyer_maker=bool((h >> 40) & 1),
    )


def available_from(sym: SymbolState, history_limit: int | None) -> int:
    """The oldest trade id of `sym` REST still serves (forgotten, or beyond the history limit)."""
    low = max(sym.first_id, sym.forgotten_before)
    if history_limit is not None:
        low = max(low, sym.next_id - history_limit)
    return low
