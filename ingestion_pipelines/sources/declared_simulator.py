"""A simulator as the selector of a declared source's recorded replay (``replay.simulator``)::

    replay:
      file: vndirect_stock_prices_ABB_2021-12-03.json
      select: {q: {clauses: "~"}}
      simulator: ingestion_pipelines.sources.vndirect.replay:SimulatedPrices   # module:name

The named callable is called once per replay dataset with the source's `RecordedPayload` and the
`ReplayDataset`, and returns the payload's selector: ``selector(params, rules)`` gives the records
a request asks for. A family's simulator so serves the windows its recording does not hold (any
day for the demo, `ingest replay` and the scale tests), and says in its PROVENANCE which answers
are recorded and which are made.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def load_callable(path: str, label: str) -> Callable[..., Any]:
    """The callable at ``module:name`` a declaration names; a ValueError (led by `label`) says
    what is wrong."""
    module_name, _, name = path.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{label} {path!r}: {exc}") from None
    if not callable(found):
        raise ValueError(f"{label} {path!r} is not callable")
    return found


def load_simulator(path: str) -> Callable[..., Any]:
    """The simulator factory at ``module:name``; a ValueError says what is wrong."""
    return load_callable(path, "replay.simulator")


def with_simulator(replay: dict[str, Any], payload: Any, dataset: Any) -> Any:
    """`payload` with the declared simulator as its selector (unchanged when none is declared)."""
    if replay.get("simulator"):
        payload.selector = load_simulator(str(replay["simulator"]))(payload, dataset)
    return payload
