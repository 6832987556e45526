"""`btc_chain`'s hook (defs/btc_chain/defs.yaml: worker id, settings, table, field map,
schedule, freshness): the code that combines one poll's four answers into one record.

One poll is four requests made one after the other: `GET /v1/fees/recommended`, `/mempool`,
`/blocks/tip/height` (a bare decimal integer as text/plain) and `/v1/difficulty-adjustment`.
Each answer rides on to the next request in its meta, and only the last one yields the poll's
single record, read by the declared field map: a request that fails fails the poll naming its
URL, and no half row is written.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from ingestion_pipelines.sources.base import Request, SourceError, exact_json
from ingestion_pipelines.sources.declared import DeclaredSource
from ingestion_pipelines.sources.declared_body import Found

# The poll's requests, in order: (name, path under base_url).
STEPS = (
    ("fees", "/v1/fees/recommended"),
    ("mempool", "/mempool"),
    ("tip_height", "/blocks/tip/height"),
    ("difficulty", "/v1/difficulty-adjustment"),
)
_HEIGHT = re.compile(r"\d{1,12}")


class ChainPoll(DeclaredSource):
    """Four requests, one record: the answers merged, then stamped and read as declared."""

    def build_requests(self):
        """The poll's first request; the others follow from `parse`, one at a time."""
        yield _step(0, {})

    def parse(self, response, request):
        """The answer read (a bad one fails the poll); the next request, or the poll's record."""
        step = request.meta["step"]
        name = STEPS[step][0]
        state = {**request.meta["state"], name: _read(name, response)}
        if step + 1 < len(STEPS):
            yield _step(step + 1, state)
            return
        record = {
            **state["fees"],
            **state["mempool"],
            "tip_height": state["tip_height"],
            **state["difficulty"],
        }
        yield self.stamper(state, request)(Found(record, state))  # provider, captured_at


def _step(step: int, state: dict) -> Request:
    return Request(STEPS[step][1], meta={"step": step, "state": state})


def _read(name: str, response):
    """One answer as JSON-safe values (exact decimals as text): an object, or the tip height."""
    if name == "tip_height":
        text = response.content.decode("ascii", "replace").strip()
        if not _HEIGHT.fullmatch(text):
            raise SourceError(f"tip height is not a decimal integer: {text[:40]!r}")
        return int(text)
    body = exact_json(response)
    if not isinstance(body, dict):
        raise SourceError(f"{name}: not a JSON object")
    return json_safe(body)


def json_safe(value: Any) -> Any:
    """`value` with its exact decimals as text (a request's meta holds JSON values only)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value
