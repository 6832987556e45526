"""SSI told truthfully: board-derived trades carry no reported side; field 66 is the instrument type

Field 66 of an SSI iBoard board frame was read as the side of the last match (`s` sell, `b`
buy); it is the instrument type (`s` stock, `b` bond, `f` futures...). So every SSI equity trade
was stored as a sell. This revision

- adds `trade_tick.inferred_side` (a side inferred by us by the quote rule, never reported) and
  typed `stock_quote` columns for the board fields the public parsers name (`SSI_QUOTE_COLUMNS`:
  high/low, foreign buy/sell, session, foreign room, instrument type, open);
- moves those fields out of `stock_quote.extra` into their columns, and field 66 into
  `instrument_type` (from `extra["66"]`, or from `last_side`, which the old reading filled with
  `sell` for `s` and `buy` for `b`); `last_side` becomes NULL: the board reports no side;
- sets `side` = `none` on every SSI trade and fills `inferred_side` from the stored quotes: the
  quote rule against the best bid/ask of the symbol's previous frame of the same ICT day, none
  in an auction session (ATO/ATC) or inside the spread.

It logs how many rows it changed. Downgrading puts the typed fields back into `extra` by
position; the wrong sides are not restored (`side` stays `none`).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from loguru import logger

from ingestion_pipelines.core.timezones import ICT
from ingestion_pipelines.core.values import quote_rule_side
from ingestion_pipelines.storage.migration_ops import op
from ingestion_pipelines.storage.tables import SSI_QUOTE_COLUMNS
from ingestion_pipelines.storage.types import ExactDecimal, JsonDocument, UtcDateTime, json_text

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

PAGE = 2000
INSTRUMENT_TYPE_POSITION = 66
OLD_SIDE_CODES = {"sell": "s", "buy": "b"}  # what the old reading made of field 66
AUCTION_SESSIONS = ("ATO", "ATC")  # as feeds/ssi/feed.py: one price for all, no taker side
_DECIMAL_COLUMNS = [(n, p) for n, k, p in SSI_QUOTE_COLUMNS if k is ExactDecimal]
_TEXT_COLUMNS = [(n, p) for n, k, p in SSI_QUOTE_COLUMNS if k is not ExactDecimal]


def _column_type(kind: Any) -> Any:
    return kind() if isinstance(kind, type) else kind.copy()


def _new_columns() -> dict[str, list[sa.Column]]:
    return {
        "trade_tick": [sa.Column("inferred_side", sa.String(4))],
        "stock_quote": [sa.Column(n, _column_type(k)) for n, k, _p in SSI_QUOTE_COLUMNS],
    }


_meta = sa.MetaData()
_quote = sa.Table(
    "stock_quote",
    _meta,
    sa.Column("symbol", sa.String(32)),
    sa.Column("quoted_at", UtcDateTime()),
    sa.Column("last_side", sa.String(4)),
    sa.Column("bid1_price", ExactDecimal()),
    sa.Column("ask1_price", ExactDecimal()),
    sa.Column("extra", JsonDocument()),
    *(sa.Column(n, _column_type(k)) for n, k, _p in SSI_QUOTE_COLUMNS),
)
_trade = sa.Table(
    "trade_tick",
    _meta,
    sa.Column("source", sa.String(32)),
    sa.Column("symbol", sa.String(32)),
    sa.Column("trade_id", sa.BigInteger()),
    sa.Column("price", ExactDecimal()),
    sa.Column("side", sa.String(4)),
    sa.Column("traded_at", UtcDateTime()),
    sa.Column("inferred_side", sa.String(4)),
)


def _decimal(text: Any) -> Decimal | None:
    """The field's exact value, or None when it is not a finite non-negative number."""
    try:
        value = Decimal(str(text))
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() and value >= 0 else None


def _quote_pages(conn, columns):
    """Every stock_quote row (the given columns and its key), page by page in key order."""
    q = _quote.c
    last = None
    while True:
        query = sa.select(q.symbol, q.quoted_at, *columns).order_by(q.symbol, q.quoted_at)
        if last is not None:
            query = query.where(
                (q.symbol > last[0]) | ((q.symbol == last[0]) & (q.quoted_at > last[1]))
            )
        rows = conn.execute(query.limit(PAGE)).mappings().all()
        if not rows:
            return
        yield rows
        last = (rows[-1]["symbol"], rows[-1]["quoted_at"])


def _update_quotes(conn, values: list[dict[str, Any]]) -> None:
    if not values:
        return
    q = _quote.c
    statement = (
        _quote.update()
        .where(q.symbol == sa.bindparam("k_symbol"))
        .where(q.quoted_at == sa.bindparam("k_quoted_at", type_=UtcDateTime()))
        .values({k: sa.bindparam(k, type_=q[k].type) for k in values[0] if not k.startswith("k_")})
    )
    conn.execute(statement, values)


def _typed_from_extra(row) -> dict[str, Any] | None:
    """A quote's new column values taken out of `extra` (and field 66 out of `last_side`), or
    None when the row has nothing to move."""
    extra = dict(row["extra"] or {})
    values: dict[str, Any] = {}
    for name, position in _DECIMAL_COLUMNS:
        text = extra.get(str(position))
        if text is not None and (value := _decimal(text)) is not None:
            values[name] = value
            del extra[str(position)]
    for name, position in _TEXT_COLUMNS:
        if position != INSTRUMENT_TYPE_POSITION and str(position) in extra:
            values[name] = str(extra.pop(str(position)))
    code = extra.pop(str(INSTRUMENT_TYPE_POSITION), None)
    if code is None:
        code = OLD_SIDE_CODES.get(row["last_side"])
    if code is not None:
        values["instrument_type"] = code
    if not values and row["last_side"] is None:
        return None
    names = [n for n, _k, _p in SSI_QUOTE_COLUMNS]
    return {
        "k_symbol": row["symbol"],
        "k_quoted_at": row["quoted_at"],
        "last_side": None,
        **{n: values.get(n) for n in names},
        "extra": json_text(extra) if extra else None,
    }


def _correct_quotes(conn) -> int:
    changed = 0
    for rows in _quote_pages(conn, [_quote.c.last_side, _quote.c.extra]):
        values = [v for row in rows if (v := _typed_from_extra(row)) is not None]
        _update_quotes(conn, values)
        changed += len(values)
    return changed


def _day_start(at: datetime) -> datetime:
    local = at.astimezone(ICT)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def _quotes_for(conn, symbol: str, first: datetime, last: datetime):
    """The symbol's quotes from the one before `first` (same ICT day) up to `last`, in order."""
    q = _quote.c
    before = (
        sa.select(sa.func.max(q.quoted_at))
        .where(q.symbol == symbol, q.quoted_at >= _day_start(first), q.quoted_at < first)
        .scalar_subquery()
    )
    start = conn.execute(sa.select(before)).scalar() or first
    query = (
        sa.select(q.quoted_at, q.bid1_price, q.ask1_price, q.trading_session)
        .where(q.symbol == symbol, q.quoted_at >= start, q.quoted_at <= last)
        .order_by(q.quoted_at)
    )
    return conn.execute(query).all()


def _inferred_sides(conn, symbol: str, trades) -> list[str | None]:
    """Each trade's side by the quote rule against the symbol's frame before it (same ICT day),
    none when its own frame is in an auction session; `trades` in time order."""
    quotes = _quotes_for(conn, symbol, trades[0].traded_at, trades[-1].traded_at)
    sides: list[str | None] = []
    i, before = 0, None
    for trade in trades:
        while i < len(quotes) and quotes[i].quoted_at < trade.traded_at:
            before = quotes[i]
            i += 1
        own = quotes[i] if i < len(quotes) and quotes[i].quoted_at == trade.traded_at else None
        same_day = before is not None and before.quoted_at >= _day_start(trade.traded_at)
        if not same_day or (own is not None and own.trading_session in AUCTION_SESSIONS):
            sides.append(None)
        else:
            sides.append(quote_rule_side(trade.price, before.bid1_price, before.ask1_price))
    return sides


def _correct_trades(conn) -> tuple[int, int]:
    """Every SSI trade: side `none`, inferred side filled. Returns (rows changed, inferred)."""
    t = _trade.c
    symbols = conn.execute(sa.select(t.symbol).where(t.source == "ssi").distinct()).scalars()
    update = (
        _trade.update()
        .where(t.source == "ssi")
        .where(t.symbol == sa.bindparam("k_symbol"))
        .where(t.trade_id == sa.bindparam("k_trade_id"))
        .values(side="none", inferred_side=sa.bindparam("v_inferred", type_=sa.String(4)))
    )
    changed = inferred = 0
    for symbol in list(symbols):
        last = None
        while True:
            query = sa.select(t.trade_id, t.price, t.side, t.traded_at, t.inferred_side).where(
                t.source == "ssi", t.symbol == symbol
            )
            if last is not None:
                query = query.where(
                    (t.traded_at > last[0]) | ((t.traded_at == last[0]) & (t.trade_id > last[1]))
                )
            trades = conn.execute(query.order_by(t.traded_at, t.trade_id).limit(PAGE)).all()
            if not trades:
                break
            last = (trades[-1].traded_at, trades[-1].trade_id)
            values = []
            for trade, side in zip(trades, _inferred_sides(conn, symbol, trades), strict=True):
                if trade.side != "none" or trade.inferred_side != side:
                    values.append(
                        {"k_symbol": symbol, "k_trade_id": trade.trade_id, "v_inferred": side}
                    )
                    inferred += side is not None
            if values:
                conn.execute(update, values)
            changed += len(values)
    return changed, inferred


def upgrade() -> None:
    for table, columns in _new_columns().items():
        for column in columns:
            op.add_column(table, column)
    conn = op.get_bind()
    quotes = _correct_quotes(conn)
    trades, inferred = _correct_trades(conn)
    logger.info(
        "migration 0009: {} SSI trades changed (side read from field 66 -> none; {} with an "
        "inferred side), {} stock_quote rows changed (field 66 -> instrument_type, typed fields "
        "out of extra, last_side -> NULL)",
        trades,
        inferred,
        quotes,
    )


def _text(value: Decimal) -> str:
    """The decimal as wire text: no exponent, no trailing zeros the column's scale added."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _typed_back_to_extra(row) -> dict[str, Any] | None:
    extra = dict(row["extra"] or {})
    moved = False
    for name, _kind, position in SSI_QUOTE_COLUMNS:
        value = row[name]
        if value is not None:
            extra[str(position)] = _text(value) if isinstance(value, Decimal) else value
            moved = True
    if not moved:
        return None
    return {
        "k_symbol": row["symbol"],
        "k_quoted_at": row["quoted_at"],
        "extra": json_text(extra),
    }


def downgrade() -> None:
    conn = op.get_bind()
    typed = [_quote.c[n] for n, _k, _p in SSI_QUOTE_COLUMNS]
    for rows in _quote_pages(conn, [_quote.c.extra, *typed]):
        _update_quotes(conn, [v for row in rows if (v := _typed_back_to_extra(row)) is not None])
    for table, columns in _new_columns().items():
        with op.batch_alter_table(table) as batch:
            for column in reversed(columns):
                batch.drop_column(column.name)
