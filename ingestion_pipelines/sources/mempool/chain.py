"""Bitcoin fees, mempool and chain statistics (`btc_chain`) from a mempool.space-compatible API.

One poll, every 5 minutes, is four requests made one after the other: `GET /v1/fees/recommended`,
`/mempool`, `/blocks/tip/height` (a bare decimal integer as text/plain) and
`/v1/difficulty-adjustment`. Each answer's body rides on to the next request, and only the last
one yields the poll's single record: a request that fails fails the poll naming its URL, and no
half row is written. `captured_at` is the poll's start (our clock: the endpoints carry no time of
their own), `provider` the configured name of the instance (mempool.space or a self-hosted one;
which chain it serves is the configuration's business).

Units: fees in sat/vB as exact decimals read from the JSON text; `estimatedRetargetDate` is epoch
**milliseconds** while `previousTime` in the same object is epoch **seconds**. The mempool's fee
histogram and the difficulty answer's other fields (`remainingTime`, `timeAvg`, ... in ms) are
kept in `extra`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import Field

from ingestion_pipelines.config.workers import ScheduledSettings
from ingestion_pipelines.sources.base import (
    EpochMillis,
    EpochSeconds,
    Exact,
    NonNegativeExact,
    Record,
    Request,
    Source,
    SourceError,
    UtcTime,
    exact_json,
)
from ingestion_pipelines.storage.tables import btc_chain_stat

# The poll's requests, in order: (name, path under base_url).
STEPS = (
    ("fees", "/v1/fees/recommended"),
    ("mempool", "/mempool"),
    ("tip_height", "/blocks/tip/height"),
    ("difficulty", "/v1/difficulty-adjustment"),
)
_HEIGHT = re.compile(r"\d{1,12}")


class BtcChainSettings(ScheduledSettings):
    """Which mempool.space-compatible API `btc_chain` polls, under which provider name."""

    base_url: str = "https://mempool.space/api"
    cron: str = "*/5 * * * *"
    provider: str = Field("mempool.space", min_length=1, max_length=64, pattern=r"^[\w.:-]+$")


class ChainStat(Record):
    """One poll's statistics."""

    provider: str
    captured_at: UtcTime
    fee_fastest: NonNegativeExact = Field(validation_alias="fastestFee")
    fee_half_hour: NonNegativeExact = Field(validation_alias="halfHourFee")
    fee_hour: NonNegativeExact = Field(validation_alias="hourFee")
    fee_economy: NonNegativeExact | None = Field(None, validation_alias="economyFee")
    fee_minimum: NonNegativeExact | None = Field(None, validation_alias="minimumFee")
    mempool_tx_count: int = Field(ge=0, validation_alias="count")
    mempool_vsize: int = Field(ge=0, validation_alias="vsize")
    mempool_total_fee_sat: int | None = Field(None, ge=0, validation_alias="total_fee")
    tip_height: int = Field(ge=0)
    difficulty_progress_pct: Exact | None = Field(None, validation_alias="progressPercent")
    difficulty_change_pct: Exact | None = Field(None, validation_alias="difficultyChange")
    previous_retarget_pct: Exact | None = Field(None, validation_alias="previousRetarget")
    estimated_retarget_at: EpochMillis | None = Field(
        None, validation_alias="estimatedRetargetDate"
    )
    previous_retarget_at: EpochSeconds | None = Field(None, validation_alias="previousTime")
    remaining_blocks: int | None = Field(None, ge=0, validation_alias="remainingBlocks")
    next_retarget_height: int | None = Field(None, ge=0, validation_alias="nextRetargetHeight")


class BtcChain(Source):
    """Bitcoin fees, mempool and difficulty estimate: one row per poll, every 5 minutes."""

    worker_id = "btc_chain"
    group = "crypto"
    table = btc_chain_stat
    record = ChainStat
    Settings = BtcChainSettings
    fresh_within = timedelta(minutes=30)

    def build_requests(self):
        """The poll's first request; the others follow from `parse`, one at a time."""
        captured_at = datetime.now(UTC).isoformat()
        yield self._step(0, {"captured_at": captured_at})

    def parse(self, response, request):
        """The answer read (a bad one fails the poll); the next request, or the poll's record."""
        step = request.meta["step"]
        name = STEPS[step][0]
        state = {**request.meta["state"], name: _read(name, response)}
        if step + 1 < len(STEPS):
            yield self._step(step + 1, state)
            return
        yield {
            "provider": self.settings.provider,
            "captured_at": datetime.fromisoformat(state["captured_at"]),
            **state["fees"],
            **state["mempool"],
            "tip_height": state["tip_height"],
            **state["difficulty"],
        }

    @staticmethod
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
