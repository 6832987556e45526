"""How the sidecar treats each table a feed writes: its table policy (apart from `feeds/` so
that the writer process loads it without importing every feed).

A feed declares the policies of its tables (`Feed.policies`); the engine and the writer read
them and never test a table's name. A policy says

- `on_conflict`: `ignore` for immutable rows (a trade stays as first stored), `update` for
  snapshots (a quote stored again replaces the stored one);
- `refused(rows)`: the rows whose values cannot be stored, each with why (dead-lettered alone,
  the frame's other rows kept); None: no check beyond the database's;
- `gap_tracked`: rows carry per-symbol consecutive ids (`symbol`, `trade_id`) that the engine
  tracks to find and fill gaps, when the feed says its ids are consecutive (`consecutive_ids`);
- `fenced`: only the feed's owner (newest fencing token) may commit these rows;
- `derived_bars`: one-minute bars are kept current from these rows in the same transaction;
- `trades`: the rows are trades (`traded_at`, `received_at`): counted per ICT day in the feed's
  write metrics and reports, published live on `ticks:<source>:<symbol>`.

A table no feed declares (`dead_letter`, `worker_state`) gets `CONTROL`: inserted with ignore
semantics, unfenced, nothing derived.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ingestion_pipelines.core.values import COLUMN_LIMIT, positive_exact

Row = dict[str, Any]
_ZERO = Decimal(0)  # (a Decimal compares faster with a Decimal than with an int)


@dataclass(frozen=True)
class TablePolicy:
    """What the sidecar does with one table's rows (see module doc)."""

    table: str
    on_conflict: str = "ignore"
    refused: Callable[[list[Row]], list[tuple[Row, str]]] | None = None
    gap_tracked: bool = False
    fenced: bool = False
    derived_bars: bool = False
    trades: bool = False


def trade_value_error(row: Row) -> str | None:
    """Why a trade's price or quantity cannot be stored (None: it can): each must pass
    `values.positive_exact` (a finite exact number greater than zero that fits the column)."""
    for name in ("price", "quantity"):
        value = row.get(name)
        try:
            positive_exact(value)
        except ValueError as exc:
            if isinstance(value, float):
                return f"{name} {value!r}: {exc}"
            try:
                value = Decimal(value)
            except (ArithmeticError, TypeError, ValueError):
                return f"{name} {value!r} is not a number"
            return f"{name} {value} is not a finite number in (0, {COLUMN_LIMIT:.0e})"
    return None


def refused_trades(rows: list[Row]) -> list[tuple[Row, str]]:
    """The trades whose price or quantity cannot be stored, each with why."""
    # the usual case, inline (the per-row cost of `trade_value_error` shows at full rate):
    # two finite decimals in (0, COLUMN_LIMIT)
    for row in rows:
        price, quantity = row.get("price"), row.get("quantity")
        if not (
            type(price) is Decimal
            and type(quantity) is Decimal
            and price.is_finite()
            and quantity.is_finite()
            and _ZERO < price < COLUMN_LIMIT
            and _ZERO < quantity < COLUMN_LIMIT
        ):
            break
    else:
        return []
    return [(row, why) for row in rows if (why := trade_value_error(row)) is not None]


TRADES = TablePolicy(
    "trade_tick",
    on_conflict="ignore",
    refused=refused_trades,
    gap_tracked=True,
    fenced=True,
    derived_bars=True,
    trades=True,
)
QUOTES = TablePolicy("stock_quote", on_conflict="update", fenced=True)
# order books (binance_depth): a snapshot at an update id is what the book was then, and a
# resynchronisation happened once: both immutable; no ids to track for gaps (the book checks
# its own sequence), nothing derived
BOOK_SNAPSHOTS = TablePolicy("order_book_snapshot", on_conflict="ignore", fenced=True)
BOOK_RESYNCS = TablePolicy("order_book_resync", on_conflict="ignore", fenced=True)
CONTROL = TablePolicy("", on_conflict="ignore")

# Every table a feed may declare, by name: the writer (and its process) reads a batch's policy
# from its table's name. A new kind of feed table adds its policy here.
POLICIES = {p.table: p for p in (TRADES, QUOTES, BOOK_SNAPSHOTS, BOOK_RESYNCS)}


def policy_of(table: str) -> TablePolicy:
    """The policy of `table` (`CONTROL` for a table no feed declares)."""
    return POLICIES.get(table, CONTROL)
