"""The relay's garbage collection on its own clock (live/collector.py)."""

from __future__ import annotations

import asyncio
import gc
import weakref

from ingestion_pipelines.live.collector import Collector


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only a collection frees it


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.01)


def test_cycles_are_freed_on_the_clock_and_the_collector_is_restored():
    freed = asyncio.Event()

    async def scenario() -> Collector:
        collector = Collector(young_every_s=0.01, full_every_s=0.05)
        task = asyncio.create_task(collector.run())
        await asyncio.sleep(0)
        assert not gc.isenabled()  # no automatic pause while the relay runs
        node = _Node()
        weakref.finalize(node, freed.set)
        del node
        await asyncio.wait_for(freed.wait(), 2)
        await asyncio.wait_for(_until(lambda: collector.passes["full"] >= 1), 2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return collector

    collector = asyncio.run(scenario())
    assert gc.isenabled()
    assert collector.passes["young"] >= 1 and collector.passes["full"] >= 1
    described = collector.describe()
    assert set(described["longest_ms"]) == {"young", "full"}
