"""One-minute bars kept current as trades commit (the writer calls it inside each transaction).

For every (source, symbol, minute) a batch touches, one upsert of its `trade_bar_1m` row, merged
exactly with what the minute already holds: open from the earliest trade and close from the latest
by (traded_at, trade_id), high/low the extremes, volume and trade_count summed. The state of recent
minutes is kept in memory with the trade ids already counted (as ranges: consecutive ids cost one),
so a trade sent twice, or re-fetched by a gap fill, is never counted twice. A minute not in memory
(the first batch of a new minute, a late trade, a restart) is loaded from `trade_tick` inside the
same transaction — after this batch's trades were written, so the bar is exact whatever was there.

Bars are the same as `derived.trade_bars.aggregate_bars` computes from `trade_tick`, which the daily
reconciliation (the `trade_bars_1m` asset and its check) verifies. A bar is final as soon as its
minute's last trade committed.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from ingestion_pipelines.storage.tables import trade_bar_1m, trade_tick
from ingestion_pipelines.storage.upsert import fast_upsert

MINUTE = timedelta(minutes=1)
# Minutes kept in memory behind the newest one seen per symbol (older ones reload when touched).
KEEP_MINUTES = 3

BarKey = tuple[str, str, datetime]


class IdRanges:
    """A set of integer ids kept as sorted disjoint ranges [lo, hi]."""

    __slots__ = ("_hi", "_lo")

    def __init__(self) -> None:
        self._lo: list[int] = []
        self._hi: list[int] = []

    def add(self, i: int) -> bool:
        """Add `i`; False when it was already there."""
        lo, hi = self._lo, self._hi
        if hi and i == hi[-1] + 1:  # the usual case: the next consecutive id
            hi[-1] = i
            return True
        k = bisect_right(lo, i) - 1
        if k >= 0 and i <= hi[k]:
            return False
        join_left = k >= 0 and hi[k] == i - 1
        join_right = k + 1 < len(lo) and lo[k + 1] == i + 1
        if join_left and join_right:
            hi[k] = hi[k + 1]
            del lo[k + 1], hi[k + 1]
        elif join_left:
            hi[k] = i
        elif join_right:
            lo[k + 1] = i
        else:
            lo.insert(k + 1, i)
            hi.insert(k + 1, i)
        return True

    def __len__(self) -> int:
        return sum(h - lo + 1 for lo, h in zip(self._lo, self._hi, strict=True))


@dataclass(slots=True)
class _Bar:
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trade_count: int
    first: tuple[datetime, int]
    last: tuple[datetime, int]
    ids: IdRanges = field(default_factory=IdRanges)

    @classmethod
    def of(cls, price: Decimal, quantity: Decimal, at: tuple[datetime, int]) -> _Bar:
        bar = cls(price, price, price, price, quantity, 1, at, at)
        bar.ids.add(at[1])
        return bar

    def add(self, price: Decimal, quantity: Decimal, at: tuple[datetime, int]) -> bool:
        """Merge one trade; False when its id was already counted."""
        if not self.ids.add(at[1]):
            return False
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        if at < self.first:
            self.first, self.open = at, price
        if at > self.last:
            self.last, self.close = at, price
        self.volume += quantity
        self.trade_count += 1
        return True

    def row(self, key: BarKey) -> dict[str, Any]:
        source, symbol, start = key
        return {
            "source": source,
            "symbol": symbol,
            "bar_start": start,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            "trade_count": self.trade_count,
        }


def minute_of(traded_at: datetime) -> datetime:
    """The UTC minute a trade belongs to (its bar's `bar_start`)."""
    return traded_at.astimezone(UTC).replace(second=0, microsecond=0)


class LiveBars:
    """The bars of recent minutes, kept exact as trade batches commit (see module doc).

    `apply(conn, rows)` runs inside the writer's transaction and returns the bar rows it upserted;
    `committed()` or `rolled_back()` must follow. Commits through one LiveBars are serialized by
    `lock` (the writer holds it around each transaction that writes trades)."""

    def __init__(self) -> None:
        self._bars: dict[BarKey, _Bar] = {}
        self._newest: dict[tuple[str, str], datetime] = {}
        self._touched: set[BarKey] = set()
        self.lock = threading.RLock()

    def apply(self, conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Fold trade rows into their one-minute bars and upsert those bars on `conn`; the bar rows
        written."""
        by_bar: dict[BarKey, list[dict[str, Any]]] = {}
        for row in rows:
            at = row["traded_at"]
            minute = at.replace(second=0, microsecond=0) if at.tzinfo is UTC else minute_of(at)
            key = (row["source"], row["symbol"], minute)
            trades = by_bar.get(key)
            if trades is None:
                by_bar[key] = [row]
            else:
                trades.append(row)
        changed: list[dict[str, Any]] = []
        for key, trades in by_bar.items():
            self._touched.add(key)
            bar = self._bars.get(key)
            if bar is None:
                bar = self._load(conn, key)
                if bar is None:  # nothing stored: every trade was refused or fenced
                    continue
                self._bars[key] = bar
            else:
                added = False
                for t in trades:
                    if bar.add(t["price"], t["quantity"], (t["traded_at"], t["trade_id"])):
                        added = True
                if not added:
                    continue  # only trades counted before: the bar is unchanged
            changed.append(bar.row(key))
        if changed:
            fast_upsert(conn, trade_bar_1m, changed, on_conflict="update")
        return changed

    def committed(self) -> None:
        """The transaction committed: forget minutes too old to keep in memory."""
        for source, symbol, start in self._touched:
            newest = self._newest.get((source, symbol))
            if newest is None or start > newest:
                self._newest[(source, symbol)] = start
        self._touched.clear()
        horizon = KEEP_MINUTES * MINUTE
        stale = [k for k in self._bars if self._newest[(k[0], k[1])] - k[2] > horizon]
        for key in stale:
            del self._bars[key]

    def rolled_back(self) -> None:
        """The transaction failed: what it merged is forgotten (those minutes reload)."""
        for key in self._touched:
            self._bars.pop(key, None)
        self._touched.clear()

    @staticmethod
    def _load(conn: Connection, key: BarKey) -> _Bar | None:
        """The minute's bar from every trade `trade_tick` holds for it (this batch included)."""
        source, symbol, start = key
        t = trade_tick.c
        query = (
            select(t.trade_id, t.price, t.quantity, t.traded_at)
            .where(
                t.source == source,
                t.symbol == symbol,
                t.traded_at >= start,
                t.traded_at < start + MINUTE,
            )
            .order_by(t.traded_at, t.trade_id)
        )
        bar: _Bar | None = None
        for trade_id, price, quantity, traded_at in conn.execute(query):
            at = (traded_at, int(trade_id))
            if bar is None:
                bar = _Bar.of(Decimal(price), Decimal(quantity), at)
            else:
                bar.add(Decimal(price), Decimal(quantity), at)
        return bar


def bar_message(bar: dict[str, Any]) -> dict[str, Any]:
    """A bar as published on `bars:<source>:<symbol>`: trade_bar_1m's column names, decimals as
    strings, `bar_start` as ISO 8601 UTC."""
    out = dict(bar)
    out["bar_start"] = bar["bar_start"].isoformat()
    for name in ("open", "high", "low", "close", "volume"):
        value = bar[name]
        out[name] = format(value.normalize(), "f") if value else "0"
    return out
