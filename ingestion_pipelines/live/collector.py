"""The relay's garbage collection on its own clock.

CPython's collector runs when allocations cross its thresholds: in a relay making a million
deliveries a second that is often, and a pass over the older generations stops every client's
stream while it walks the messages kept for them (the live relay's p99 at 1,000 clients x
1,000 msg/s: 94-132 ms with it, 62-63 ms with it off, `benchmarks/live_relay.py`). Here the
automatic collector is off while the relay runs; the young generations are collected every
`YOUNG_EVERY_S` (a few milliseconds: what survived a second), everything every `FULL_EVERY_S`, so
reference cycles are still freed and one full pause touches a sliver of the messages.
"""

from __future__ import annotations

import asyncio
import gc
import time

YOUNG_EVERY_S = 1.0
FULL_EVERY_S = 300.0


class Collector:
    """Collects on a clock; keeps what each kind of pass cost (for `/status`)."""

    def __init__(self, young_every_s: float = YOUNG_EVERY_S, full_every_s: float = FULL_EVERY_S):
        self.young_every_s = young_every_s
        self.full_every_s = full_every_s
        self.passes = {"young": 0, "full": 0}
        self.longest_ms = {"young": 0.0, "full": 0.0}

    async def run(self) -> None:
        """Until cancelled: the automatic collector off, passes on the clock; on again after."""
        gc.disable()
        loop = asyncio.get_running_loop()
        full_at = loop.time() + self.full_every_s
        try:
            while True:
                await asyncio.sleep(self.young_every_s)
                full = loop.time() >= full_at
                if full:
                    full_at = loop.time() + self.full_every_s
                self.collect("full" if full else "young")
        finally:
            gc.enable()

    def collect(self, kind: str) -> None:
        started = time.perf_counter()
        gc.collect(2 if kind == "full" else 1)
        took_ms = (time.perf_counter() - started) * 1000
        self.passes[kind] += 1
        self.longest_ms[kind] = max(self.longest_ms[kind], took_ms)

    def describe(self) -> dict[str, object]:
        return {
            "passes": dict(self.passes),
            "longest_ms": {k: round(v, 1) for k, v in self.longest_ms.items()},
        }
