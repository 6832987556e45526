"""The price steps (tick sizes) of the Vietnamese exchanges, and the reconciliation of two series
of prices with them: `reconcile` names every day on which they differ by more than one step.

Price steps in force (VND), from the exchanges' trading regulations as summarised for investors
(e.g. https://phamthangchungkhoan.com/?p=1511, "Bước giá cổ phiếu tại HOSE, HNX và UPCoM"):

| board | instrument | price | step |
|---|---|---|---|
| HOSE | stocks, closed-end fund certificates | < 10,000 | 10 |
| HOSE | stocks, closed-end fund certificates | 10,000 - 49,950 | 50 |
| HOSE | stocks, closed-end fund certificates | >= 50,000 | 100 |
| HOSE | ETFs, covered warrants | any | 10 |
| HNX | stocks | any | 100 |
| HNX | ETFs | any | 1 |
| UPCoM | stocks | any | 100 |

An adjusted price is a price no one traded at, so its "step" is the step the board applies at that
price level; at a band edge the smaller of the two prices decides, so a difference is never
excused by the coarser band. Earlier regimes (HOSE used coarser steps before its current table)
are not modelled: the current steps are the finer ones, so old days are judged strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum

from ingestion_pipelines.core.errors import IngestError


class Board(StrEnum):
    HOSE = "HOSE"
    HNX = "HNX"
    UPCOM = "UPCOM"


class Instrument(StrEnum):
    STOCK = "stock"
    FUND = "fund"  # closed-end fund certificate: stepped like a stock
    ETF = "etf"
    COVERED_WARRANT = "covered_warrant"


_ALIASES = {"HSX": Board.HOSE, "HOSE": Board.HOSE, "HNX": Board.HNX, "UPCOM": Board.UPCOM}
_HOSE_BANDS = ((Decimal(10_000), Decimal(10)), (Decimal(50_000), Decimal(50)))
_HOSE_TOP = Decimal(100)
_FIXED: dict[tuple[Board, Instrument], Decimal] = {
    (Board.HOSE, Instrument.ETF): Decimal(10),
    (Board.HOSE, Instrument.COVERED_WARRANT): Decimal(10),
    (Board.HNX, Instrument.STOCK): Decimal(100),
    (Board.HNX, Instrument.FUND): Decimal(100),
    (Board.HNX, Instrument.ETF): Decimal(1),
    (Board.UPCOM, Instrument.STOCK): Decimal(100),
    (Board.UPCOM, Instrument.FUND): Decimal(100),
}


class PriceStepError(IngestError, ValueError):
    """A board, an instrument or a price no step is known for."""


def board_of(exchange: str) -> Board:
    """The board named by `exchange` as the providers write it ("HOSE", "HSX", "hnx", "UPCoM")."""
    try:
        return _ALIASES[exchange.strip().upper()]
    except KeyError:
        raise PriceStepError(f"unknown exchange {exchange!r}") from None


def price_step(price_vnd: Decimal, exchange: str, instrument: str = Instrument.STOCK) -> Decimal:
    """The step (VND) of `exchange` for `instrument` at `price_vnd` (VND, positive)."""
    if not price_vnd > 0:
        raise PriceStepError(f"no price step for a price of {price_vnd}")
    board = board_of(exchange)
    kind = Instrument(instrument)
    if board is Board.HOSE and kind in (Instrument.STOCK, Instrument.FUND):
        for below, step in _HOSE_BANDS:
            if price_vnd < below:
                return step
        return _HOSE_TOP
    try:
        return _FIXED[board, kind]
    except KeyError:
        raise PriceStepError(f"no price step for {kind} on {board}") from None


@dataclass(frozen=True)
class PriceDifference:
    """One day on which two prices of a symbol differ by more than one price step."""

    symbol: str
    day: date
    ours: Decimal
    theirs: Decimal
    step: Decimal

    @property
    def difference(self) -> Decimal:
        return self.ours - self.theirs

    @property
    def steps(self) -> Decimal:
        """The difference in price steps (signed)."""
        return self.difference / self.step

    def describe(self) -> str:
        return (
            f"{self.symbol} {self.day}: {self.ours} vs {self.theirs} VND "
            f"({self.difference:+} VND, {self.steps:+.2f} steps of {self.step})"
        )


@dataclass
class Reconciliation:
    """What comparing two price series found: the days compared, every day differing by more
    than one step, and the days only one side has."""

    compared: int = 0
    differences: list[PriceDifference] = field(default_factory=list)
    only_ours: list[date] = field(default_factory=list)
    only_theirs: list[date] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        """No day differs by more than a step (days one side lacks are reported, not judged)."""
        return not self.differences

    def metadata(self) -> dict[str, object]:
        """A summary for a run's or a check's metadata."""
        return {
            "days_compared": self.compared,
            "days_over_one_step": len(self.differences),
            "days_only_ours": len(self.only_ours),
            "days_only_theirs": len(self.only_theirs),
            "first_differences": [d.describe() for d in self.differences[:10]],
        }


def reconcile(
    symbol: str,
    ours: Mapping[date, Decimal],
    theirs: Mapping[date, Decimal],
    exchange: str,
    instrument: str = Instrument.STOCK,
    tolerance: Decimal | None = None,
) -> Reconciliation:
    """Compare two price series of `symbol` (VND, by day) on the days both cover; name every day
    whose prices differ by more than one price step of `exchange` at that price level, or by
    more than `tolerance` when given (index levels, which have no price step: e.g. 0.01 point)."""
    result = Reconciliation()
    for day in sorted(ours.keys() | theirs.keys()):
        if day not in theirs:
            result.only_ours.append(day)
            continue
        if day not in ours:
            result.only_theirs.append(day)
            continue
        mine, other = ours[day], theirs[day]
        result.compared += 1
        step = (
            tolerance
            if tolerance is not None
            else price_step(min(mine, other), exchange, instrument)
        )
        if abs(mine - other) > step:
            result.differences.append(PriceDifference(symbol, day, mine, other, step))
    return result
