"""Backward price adjustment for corporate events (`vn_stock_eod_adjusted`).

On an ex-date the exchanges lower the reference price so that a holder's wealth is unchanged by
the event (HOSE and HNX trading regulations, "điều chỉnh giá tham chiếu" on the ex-right day):

    P_ex = (P_cum - D + S * r_rights) / (1 + r_rights + r_stock + r_bonus)

where P_cum is the close of the last trading day before the ex-date, D the cash dividend per
share (VND), S the subscription price of a rights issue (VND), and each r the number of new
shares per existing share (a "100:20" stock dividend is r = 0.2; a dividend "20%" in cash is
20% of the 10,000 VND par value, D = 2,000). A split of one share into n has P_ex = P_cum / n.

The backward factor of the event is f = P_ex / P_cum; every price before the ex-date is
multiplied by the product of the factors of all later events, so the series is continuous at
each ex-date and today's prices are unchanged (the convention of VNDIRECT's `adClose`, Vietcap's
adjusted bars, CRSP and Yahoo's "Adj Close"). Per event alone that gives:

| event | factor |
|---|---|
| cash dividend D | (P_cum - D) / P_cum |
| stock dividend or bonus shares r | 1 / (1 + r) |
| rights issue r at S | (P_cum + S r) / (P_cum (1 + r)) |
| split 1 -> n | 1 / n |

Events sharing an ex-date combine in the one formula above (a split on the same day as another
event is refused: its order would be a guess). Volumes are divided by the share factor (stock
dividends, bonus shares and splits change the share count; cash does not). Arithmetic is exact
`Decimal` at `PRECISION` significant digits; adjusted prices are rounded half-even to
`PRICE_PLACES` of a dong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from enum import StrEnum

from ingestion_pipelines.core.errors import IngestError

PRECISION = 40
PRICE_PLACES = Decimal("0.000001")
PAR_VALUE_VND = Decimal(10_000)
ONE = Decimal(1)
ZERO = Decimal(0)


class EventKind(StrEnum):
    CASH_DIVIDEND = "cash_dividend"
    STOCK_DIVIDEND = "stock_dividend"
    BONUS_SHARES = "bonus_shares"
    RIGHTS_ISSUE = "rights_issue"
    SPLIT = "split"


class AdjustmentError(IngestError, ValueError):
    """An event that cannot be applied as given (a missing amount, a dividend above the price)."""


@dataclass(frozen=True)
class CorporateEvent:
    """One event as `corporate_event` stores it: `ratio` new shares per existing share (stock
    dividend, bonus, rights) or shares per old share after a split; `amount` VND per share
    (cash dividend); `price` VND per new share (rights subscription)."""

    symbol: str
    kind: EventKind
    ex_date: date
    ratio: Decimal | None = None
    amount: Decimal | None = None
    price: Decimal | None = None


@dataclass(frozen=True)
class Bar:
    """One raw daily bar in VND."""

    day: date
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True)
class AdjustedBar:
    """A bar adjusted backward: prices times `factor`, volume divided by `share_factor`."""

    day: date
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    factor: Decimal
    share_factor: Decimal


def ratio_from_text(text: str) -> Decimal:
    """A Vietnamese entitlement ratio "A:B" (holders of A shares get B) as B/A, exactly."""
    left, sep, right = text.partition(":")
    if not sep:
        raise AdjustmentError(f"not a ratio 'A:B': {text!r}")
    old, new = Decimal(left.strip()), Decimal(right.strip())
    if old <= 0 or new < 0:
        raise AdjustmentError(f"not a ratio of shares: {text!r}")
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return new / old


def cash_per_share(percent_of_par: Decimal, par: Decimal = PAR_VALUE_VND) -> Decimal:
    """A cash dividend announced as a percentage of par ("20%") in VND per share (2,000)."""
    return par * percent_of_par / 100


def _need(value: Decimal | None, what: str, event: CorporateEvent) -> Decimal:
    if value is None:
        raise AdjustmentError(f"{event.symbol} {event.kind} on {event.ex_date}: no {what}")
    return value


def combined_factor(events: Sequence[CorporateEvent], prev_close: Decimal) -> Decimal:
    """The backward factor P_ex / P_cum of the events sharing one ex-date."""
    if prev_close <= 0:
        raise AdjustmentError(f"no factor from a previous close of {prev_close}")
    splits = [e for e in events if e.kind is EventKind.SPLIT]
    with localcontext() as ctx:
        ctx.prec = PRECISION
        if splits:
            if len(events) > 1:
                raise AdjustmentError(
                    f"{events[0].symbol} {events[0].ex_date}: a split with other events "
                    "on the same ex-date"
                )
            n = _need(splits[0].ratio, "split ratio", splits[0])
            if n <= 0:
                raise AdjustmentError(f"{splits[0].symbol}: split ratio {n}")
            return ONE / n
        cash, subscribed, new_shares = ZERO, ZERO, ZERO
        for event in events:
            if event.kind is EventKind.CASH_DIVIDEND:
                cash += _need(event.amount, "amount per share", event)
                continue
            ratio = _need(event.ratio, "ratio", event)
            if ratio < 0:
                raise AdjustmentError(f"{event.symbol} {event.kind}: negative ratio {ratio}")
            new_shares += ratio
            if event.kind is EventKind.RIGHTS_ISSUE:
                subscribed += _need(event.price, "subscription price", event) * ratio
        ex_price = (prev_close - cash + subscribed) / (ONE + new_shares)
        if ex_price <= 0:
            raise AdjustmentError(
                f"{events[0].symbol} {events[0].ex_date}: events leave no price "
                f"(close {prev_close}, cash {cash})"
            )
        return ex_price / prev_close


def share_factor(events: Iterable[CorporateEvent]) -> Decimal:
    """How the events of one ex-date divide the share count's unit (stock, bonus, split)."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        factor = ONE
        for event in events:
            if event.kind in (EventKind.STOCK_DIVIDEND, EventKind.BONUS_SHARES):
                factor /= ONE + _need(event.ratio, "ratio", event)
            elif event.kind is EventKind.SPLIT:
                factor /= _need(event.ratio, "split ratio", event)
        return factor


def factors_by_ex_date(
    events: Iterable[CorporateEvent], closes: Mapping[date, Decimal]
) -> dict[date, tuple[Decimal, Decimal]]:
    """Per ex-date: (price factor, share factor). The previous close is the last close in
    `closes` before the ex-date; an event with no earlier close adjusts nothing and is left out."""
    by_day: dict[date, list[CorporateEvent]] = {}
    for event in events:
        by_day.setdefault(event.ex_date, []).append(event)
    days = sorted(closes)
    out: dict[date, tuple[Decimal, Decimal]] = {}
    for ex_date, group in sorted(by_day.items()):
        before = [d for d in days if d < ex_date]
        if not before:
            continue
        out[ex_date] = (combined_factor(group, closes[before[-1]]), share_factor(group))
    return out


def adjust(
    bars: Sequence[Bar], events: Iterable[CorporateEvent], as_of: date | None = None
) -> list[AdjustedBar]:
    """`bars` (any order, one per day) adjusted backward for `events`, in day order, as seen on
    `as_of` (default: the last bar's day): an event whose ex-date is after it has not happened
    yet and adjusts nothing (today's prices are still cum-right)."""
    ordered = sorted(bars, key=lambda b: b.day)
    if not ordered:
        return []
    seen_on = as_of or ordered[-1].day
    effective = [e for e in events if e.ex_date <= seen_on]
    factors = factors_by_ex_date(effective, {b.day: b.close for b in ordered})
    out: list[AdjustedBar] = []
    with localcontext() as ctx:
        ctx.prec = PRECISION
        for bar in ordered:
            price_f, shares_f = ONE, ONE
            for ex_date, (pf, sf) in factors.items():
                if bar.day < ex_date:
                    price_f *= pf
                    shares_f *= sf
            out.append(
                AdjustedBar(
                    bar.day,
                    _round(bar.open * price_f),
                    _round(bar.high * price_f),
                    _round(bar.low * price_f),
                    _round(bar.close * price_f),
                    _round(bar.volume / shares_f),
                    price_f,
                    shares_f,
                )
            )
    return out


def _round(value: Decimal) -> Decimal:
    return value.quantize(PRICE_PLACES, rounding=ROUND_HALF_EVEN)
