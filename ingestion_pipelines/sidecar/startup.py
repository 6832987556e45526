"""What a sidecar process does once it has started, before the feeds' steady state."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Put every object alive after start-up (modules, settings, engines, connections: a few
    hundred thousand) out of the garbage collector's reach. Its full collections then scan only
    what was made since: measured at 10,000 messages/s they paused the sidecar for 100-250 ms
    every few seconds, which was the p99 of send→commit."""
    gc.collect()
    gc.freeze()
