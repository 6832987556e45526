"""Rules across the columns of a declared source's record (``ordered`` in its defs.yaml)::

    ordered: [[low, open, high], [low, close, high]]   # each chain non-decreasing

A record breaking a chain is rejected with its reason (a dead letter), as a Python record
model's validator would (`vn_stock_eod`'s "open/close outside [low, high]"); a column left empty
(None) is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import model_validator


def broken_order(record: Any, chain: Sequence[str]) -> str | None:
    """Why `record` breaks the non-decreasing `chain` of columns, or None when it holds."""
    lower = low = None
    for upper in chain:  # one pass (a hot path: every record of a backfill)
        high = getattr(record, upper)
        if high is None:
            continue
        if low is not None and low > high:
            return f"{' <= '.join(chain)} does not hold: {lower} {low} > {upper} {high}"
        lower, low = upper, high
    return None


def ordered_validators(chains: Sequence[Sequence[str]]) -> dict[str, Callable]:
    """The record model's validators for the declared chains (none when none are declared)."""
    if not chains:
        return {}

    def check_order(record):
        for chain in chains:
            reason = broken_order(record, chain)
            if reason:
                raise ValueError(reason)
        return record

    return {"check_order": model_validator(mode="after")(check_order)}
