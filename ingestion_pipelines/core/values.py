"""Sane values per field: the checks every record model and feed row uses for exact decimals.

Prices and quantities are `DECIMAL(38,18)`: at most 20 digits before the point. A value that is
not finite (`NaN`, `Infinity`), that overflows the column (`1e400`) or that is negative where
the domain says it cannot be (a price, a quantity) is refused *per record*, so it goes to
`dead_letter` with its reason and the rest of the batch lands.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

COLUMN_PRECISION = 38
COLUMN_SCALE = 18
# The smallest magnitude DECIMAL(38,18) cannot hold.
COLUMN_LIMIT = Decimal(10) ** (COLUMN_PRECISION - COLUMN_SCALE)


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("a float where an exact decimal is required")
    return value


def within_column(value: Decimal) -> Decimal:
    """`value` when it is finite and fits DECIMAL(38,18); else `ValueError`."""
    if not value.is_finite():
        raise ValueError(f"not a finite number: {value}")
    if abs(value) >= COLUMN_LIMIT:
        raise ValueError(f"{value} is out of range for DECIMAL({COLUMN_PRECISION},{COLUMN_SCALE})")
    return value


def positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")
    return value


def non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError(f"must not be negative, got {value}")
    return value


def exact(text: Any) -> Decimal:
    """An exact decimal from wire text (never a float), finite and within the column."""
    _no_float(text)
    try:
        value = text if isinstance(text, Decimal) else Decimal(text)
    except (InvalidOperation, TypeError):
        raise ValueError(f"not a decimal number: {str(text)[:40]!r}") from None
    return within_column(value)


def positive_exact(text: Any) -> Decimal:
    """A price or a quantity: `exact` and greater than zero."""
    return positive(exact(text))


def non_negative_exact(text: Any) -> Decimal:
    """A volume, a market cap, a bid that may be zero: `exact` and not below zero."""
    return non_negative(exact(text))


Exact = Annotated[Decimal, BeforeValidator(_no_float), AfterValidator(within_column)]
PositiveExact = Annotated[Exact, AfterValidator(positive)]
NonNegativeExact = Annotated[Exact, AfterValidator(non_negative)]


def quote_rule_side(price: Decimal, bid: Decimal | None, ask: Decimal | None) -> str | None:
    """The taker side a match at `price` is *inferred* to have had from the best bid and ask
    quoted just before it (the quote rule): `buy` at or above the ask, `sell` at or below the
    bid, None inside the spread or when the book gives no two-sided, uncrossed quote.

    An inference, never a reported side: callers store it apart from the source's own side."""
    if bid is None or ask is None or bid <= 0 or ask <= 0 or bid >= ask:
        return None
    if price >= ask:
        return "buy"
    if price <= bid:
        return "sell"
    return None
