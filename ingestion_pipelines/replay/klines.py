"""Generated 1-minute Binance klines, shaped like the recorded ones (`defs/binance_klines/data`):
12-element arrays, prices and volumes as decimal strings with 8 places, times in epoch ms, the
close time one millisecond before the next open, taker buys within the volume, the unused last
field "0". For tests and benchmarks that need more minutes or symbols than the recording holds:
`KlineSeries(seed, listed_ms)` is served by `declared_time_replay` as a series computed per
request (``payload.extra["series"][symbol]``), so a year of bars costs no memory up front.
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTE_MS = 60_000


def kline_row(seed: int, open_ms: int) -> list:
    """The bar opening at `open_ms` of the series `seed` (the same inputs, the same bar)."""
    n = open_ms // MINUTE_MS
    base = 20_000_00 + seed * 1_000_00 + (n * 7919 + seed * 104_729) % 50_000  # cents
    swing = (n * 31 + seed) % 900 + 1
    opened, closed = base, base + (n % 7 - 3) * 11
    high = max(opened, closed) + swing
    low = min(opened, closed) - swing
    trades = (n * 13 + seed) % 400 + 1
    volume = trades * 12_345 + n % 1000  # 1e-8 units of the base asset
    taker = volume * ((n + seed) % 10) // 10
    price = opened / 100
    return [
        open_ms,
        _cents(opened),
        _cents(high),
        _cents(low),
        _cents(closed),
        _units(volume),
        open_ms + MINUTE_MS - 1,
        f"{volume * price / 100_000_000:.8f}",
        trades,
        _units(taker),
        f"{taker * price / 100_000_000:.8f}",
        "0",
    ]


def _cents(value: int) -> str:
    return f"{value // 100}.{value % 100:02d}000000"


def _units(value: int) -> str:
    return f"{value // 100_000_000}.{value % 100_000_000:08d}"


@dataclass(frozen=True)
class KlineSeries:
    """One symbol's 1-minute bars from `listed_ms` (a minute) to `until_ms` (exclusive; None:
    open-ended), computed per request: called with (first, last, limit) as the replay cuts."""

    seed: int
    listed_ms: int
    until_ms: int | None = None

    def __call__(self, first: int | None, last: int | None, limit: int) -> list[list]:
        """The first `limit` bars opening in [first, last] (inclusive bounds, as Binance's)."""
        start = max(first if first is not None else self.listed_ms, self.listed_ms)
        start = -(-start // MINUTE_MS) * MINUTE_MS  # the first minute at or after it
        stop = start + limit * MINUTE_MS
        for bound in (self.until_ms, None if last is None else last + 1):
            if bound is not None:
                stop = min(stop, bound)
        return [kline_row(self.seed, t) for t in range(start, stop, MINUTE_MS)]
