"""Several providers for one dataset: their order, their health and the failover of a run.

A dataset with more than one provider (`vn_stock_eod`, `vn_indices`, `vn_financial_statements`)
reads its order from the `providers` setting (first = preferred). Nothing here sends a request or
imports an engine: the runner asks `Failover` which provider serves a partition's next request,
and tells it what happened; `Failover` answers with the provider to ask next, or none.

Health, per provider, survives between runs as plain JSON (`HealthBook.snapshot()`, kept by the
caller, e.g. in `worker_state.details["providers"]`):

- consecutive failures: after `HealthPolicy.max_consecutive_failures` a provider is skipped
  until `retry_after` has passed (then it is tried again first, as its order says);
- blocked: a 401/403/451 answer (a login wall, a ban, "unavailable for legal reasons", the
  403s vnstock's users meet from cloud notebooks) marks the provider blocked at once: every later
  partition of the run goes straight to the next provider, so a blocked first provider costs one
  request per run, never more than one per partition;
- stale: a provider whose newest day lags the market calendar (`market_calendar`: the last
  trading day whose data is due) by more than `max_lag_trading_days` is stale for the partitions
  that reach that day; the next provider is asked for them (the stale provider's rows stand for
  the days they have).

The provider that served each partition, every failover (from, to, why) and the health after the
run are in `Failover.metadata()` for the run's metadata; the provider of each row is the
`provider` of the request that fetched it (`Failover.choose` before each request).

With several requests in flight, each partition already sent to a provider before its block was
seen fails over by itself: still at most one extra request per partition. `Failover` is not
thread-safe: call it from the one thread that schedules requests and handles responses (the
crawl's loop), not from the fetching threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from ingestion_pipelines.config.workers import ScheduledSettings
from ingestion_pipelines.core.redaction import redact
from ingestion_pipelines.core.timezones import ICT
from ingestion_pipelines.sources.base import SourceError
from ingestion_pipelines.vnmarket import calendar as market_calendar
from ingestion_pipelines.vnmarket.calendar import Deadline

BLOCK_STATUSES = frozenset({401, 403, 451})
# EOD data of a trading day is final by 17:00 ICT that day (`partitions.deadline` in its defs.yaml).
EOD_DEADLINE = Deadline("vn_eod", 0, time(17, 0), "a day's prices are final by 17:00 ICT that day")


class FailureKind(StrEnum):
    """Why a provider did not serve: blocked (401/403/451), failed (anything else), stale."""

    BLOCKED = "blocked"
    FAILED = "failed"
    STALE = "stale"


class ProvidersExhausted(SourceError):
    """Every provider of a dataset failed (or was unusable) for a partition."""


class MultiProviderSettings(ScheduledSettings):
    """Settings of a worker with several providers: `providers` is the order to try."""

    providers: list[str] = Field(default_factory=list, max_length=8)

    @field_validator("providers")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        names = [v.strip().lower() for v in value]
        if len(set(names)) != len(names):
            raise ValueError(f"a provider is named twice: {value}")
        return names


def provider_order(configured: Sequence[str] | None, known: Sequence[str]) -> list[str]:
    """The order to try: `configured` (the `providers` setting) when given, else `known`'s.
    A name not in `known` is refused, naming the known ones."""
    if not configured:
        return list(known)
    unknown = [p for p in configured if p not in known]
    if unknown:
        raise ValueError(f"unknown provider(s) {unknown}; known: {list(known)}")
    return list(dict.fromkeys(configured))


def classify(error: BaseException) -> FailureKind:
    """A failed request's kind: blocked on 401/403/451 (`HttpFetchError.status`), else failed."""
    status = getattr(error, "status", None)
    return FailureKind.BLOCKED if status in BLOCK_STATUSES else FailureKind.FAILED


def expected_newest_day(moment: datetime, deadline: Deadline = EOD_DEADLINE) -> date:
    """The latest trading day whose data is due at `moment` under `deadline`."""
    day = moment.astimezone(ICT).date()
    if not market_calendar.is_trading_day(day):
        day = market_calendar.previous_trading_day(day)
    while True:
        due = deadline.due_at(day)
        if due is not None and due <= moment:
            return day
        day = market_calendar.previous_trading_day(day)


def trading_day_lag(newest: date | None, wanted: date) -> int | None:
    """Trading days after `newest` up to and including `wanted` (0: up to date; None: no data)."""
    if newest is None:
        return None
    if newest >= wanted:
        return 0
    one_day = timedelta(days=1)
    return sum(1 for _ in market_calendar.trading_days(newest + one_day, wanted + one_day))


@dataclass(frozen=True)
class HealthPolicy:
    """When a provider counts as unhealthy."""

    max_consecutive_failures: int = 3
    retry_after: timedelta = timedelta(hours=6)  # an unhealthy provider is tried again after it
    max_lag_trading_days: int = 0
    deadline: Deadline = EOD_DEADLINE


@dataclass
class ProviderHealth:
    """What is known of one provider, kept between runs as JSON (`to_json`/`from_json`)."""

    provider: str
    consecutive_failures: int = 0
    blocked_status: int | None = None
    unhealthy_since: datetime | None = None
    last_error: str | None = None
    last_success_at: datetime | None = None
    newest_day: date | None = None

    def to_json(self) -> dict[str, Any]:
        """The health as plain JSON (dates as ISO text)."""
        data = asdict(self)
        for key in ("unhealthy_since", "last_success_at", "newest_day"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProviderHealth:
        """The health `to_json` wrote."""

        def when(key: str) -> datetime | None:
            return datetime.fromisoformat(data[key]) if data.get(key) else None

        newest = data.get("newest_day")
        return cls(
            provider=str(data["provider"]),
            consecutive_failures=int(data.get("consecutive_failures") or 0),
            blocked_status=data.get("blocked_status"),
            unhealthy_since=when("unhealthy_since"),
            last_error=data.get("last_error"),
            last_success_at=when("last_success_at"),
            newest_day=date.fromisoformat(newest) if newest else None,
        )


class HealthBook:
    """The health of every provider of one dataset."""

    def __init__(
        self,
        providers: Sequence[str],
        policy: HealthPolicy | None = None,
        snapshot: Mapping[str, Mapping[str, Any]] | None = None,
    ):
        self.policy = policy or HealthPolicy()
        saved = snapshot or {}
        self.health = {
            p: ProviderHealth.from_json(saved[p]) if p in saved else ProviderHealth(p)
            for p in providers
        }

    def usable(self, provider: str, now: datetime) -> bool:
        """Whether `provider` may be asked now: healthy, or unhealthy long enough to retry."""
        h = self.health[provider]
        if h.unhealthy_since is None:
            return True
        return now - h.unhealthy_since >= self.policy.retry_after

    def why_unusable(self, provider: str) -> str:
        """Why `provider` is skipped, for a log line."""
        h = self.health[provider]
        if h.blocked_status is not None:
            return f"blocked (HTTP {h.blocked_status})"
        return f"{h.consecutive_failures} consecutive failures ({h.last_error})"

    def record_success(self, provider: str, now: datetime, newest_day: date | None) -> None:
        """`provider` answered: healthy again; its newest day moves forward."""
        h = self.health[provider]
        h.consecutive_failures = 0
        h.blocked_status = None
        h.unhealthy_since = None
        h.last_success_at = now
        if newest_day is not None and (h.newest_day is None or newest_day > h.newest_day):
            h.newest_day = newest_day

    def record_failure(self, provider: str, error: BaseException, now: datetime) -> FailureKind:
        """`provider` failed with `error`: blocked at once on 401/403/451, unhealthy after
        `max_consecutive_failures` other failures in a row."""
        h = self.health[provider]
        kind = classify(error)
        h.consecutive_failures += 1
        h.last_error = redact(f"{type(error).__name__}: {error}")[:300]
        if kind is FailureKind.BLOCKED:
            h.blocked_status = getattr(error, "status", None)
        if kind is FailureKind.BLOCKED or (
            h.consecutive_failures >= self.policy.max_consecutive_failures
        ):
            h.unhealthy_since = now
        return kind

    def lag(self, provider: str, wanted: date) -> int | None:
        """Trading days `provider`'s newest day lags `wanted` (None: it has given no day yet)."""
        return trading_day_lag(self.health[provider].newest_day, wanted)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every provider's health as JSON."""
        return {p: h.to_json() for p, h in self.health.items()}


@dataclass
class _Partition:
    tried: list[str] = field(default_factory=list)
    served_by: str | None = None
    failures: dict[str, str] = field(default_factory=dict)


class Failover:
    """One run's provider decisions, partition by partition (a partition: whatever unit the
    caller retries as a whole, e.g. a trading day or one symbol's window)."""

    def __init__(
        self,
        dataset: str,
        order: Sequence[str],
        book: HealthBook | None = None,
        *,
        clock=lambda: datetime.now(UTC),
    ):
        if not order:
            raise ValueError(f"{dataset}: no provider to try")
        self.dataset = dataset
        self.order = list(order)
        self.book = book or HealthBook(self.order)
        self.clock = clock
        self.partitions: dict[str, _Partition] = {}
        self.failovers: list[dict[str, str]] = []
        self.rows: dict[str, int] = {}

    def _state(self, partition: str) -> _Partition:
        return self.partitions.setdefault(partition, _Partition())

    def choose(self, partition: str) -> str:
        """The provider for `partition`'s next request: the first in order not yet tried for it
        and usable now; if none is usable, the first not yet tried (a provider marked unhealthy
        in an earlier run may have recovered); `ProvidersExhausted` when all were tried."""
        state = self._state(partition)
        untried = [p for p in self.order if p not in state.tried]
        if not untried:
            raise self._exhausted(partition)
        now = self.clock()
        chosen = next((p for p in untried if self.book.usable(p, now)), untried[0])
        state.tried.append(chosen)
        return chosen

    def on_success(
        self,
        partition: str,
        provider: str,
        *,
        newest_day: date | None = None,
        wanted_day: date | None = None,
        rows: int = 0,
    ) -> str | None:
        """`provider` answered for `partition`. With `wanted_day` (the newest day the partition
        needs: its last day, bounded by `expected_newest_day`), a provider whose `newest_day`
        lags it by more than the policy allows is stale: the next untried provider is returned
        to ask for the partition too; None when nothing more is needed."""
        now = self.clock()
        self.book.record_success(provider, now, newest_day)
        self.rows[provider] = self.rows.get(provider, 0) + rows
        state = self._state(partition)
        state.served_by = state.served_by or provider
        if wanted_day is None:
            return None
        lag = trading_day_lag(newest_day, wanted_day)
        if lag is not None and lag <= self.book.policy.max_lag_trading_days:
            return None
        reason = f"stale: newest day {newest_day}, wanted {wanted_day} ({lag} trading days behind)"
        state.failures[provider] = reason
        return self._next(partition, provider, reason)

    def on_failure(self, partition: str, provider: str, error: BaseException) -> str:
        """`provider` failed for `partition`: the provider to ask next, or
        `ProvidersExhausted` naming every provider's cause."""
        kind = self.book.record_failure(provider, error, self.clock())
        cause = redact(f"{kind}: {type(error).__name__}: {error}")[:300]
        self._state(partition).failures[provider] = cause
        following = self._next(partition, provider, cause)
        if following is None:
            raise self._exhausted(partition) from error
        return following

    def _next(self, partition: str, provider: str, reason: str) -> str | None:
        state = self._state(partition)
        if not [p for p in self.order if p not in state.tried]:
            return None
        following = self.choose(partition)
        self.failovers.append(
            {"partition": partition, "from": provider, "to": following, "reason": reason}
        )
        return following

    def _exhausted(self, partition: str) -> ProvidersExhausted:
        state = self._state(partition)
        causes = "; ".join(f"{p}: {c}" for p, c in state.failures.items()) or "none tried"
        return ProvidersExhausted(
            f"{self.dataset}: every provider failed for {partition}: {causes}"
        )

    def provider_of(self, partition: str) -> str | None:
        """The provider whose answer served `partition` first (None: none did)."""
        return self._state(partition).served_by

    def metadata(self) -> dict[str, Any]:
        """The run's provider metadata: order, provider per partition, failovers, health."""
        served: dict[str, int] = {}
        for state in self.partitions.values():
            if state.served_by is not None:
                served[state.served_by] = served.get(state.served_by, 0) + 1
        return {
            "providers_order": list(self.order),
            "partitions_by_provider": served,
            "rows_by_provider": dict(self.rows),
            "failovers": len(self.failovers),
            "first_failovers": self.failovers[:10],
            "provider_health": self.book.snapshot(),
        }
