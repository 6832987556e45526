"""The Dagster side of the websocket feeds: one external asset, one heartbeat check and one
switch sensor per feed.

The feeds themselves run in the sidecar (`ingest sidecar`), outside Dagster runs. Dagster knows
them as *external assets* (`AssetSpec`): it cannot materialize them, the sidecar reports their
materializations over HTTP (`ingestion_pipelines.sidecar.reporter`).

Per feed `<worker_id>`:

- asset `<worker_id>` (group `feeds`, daily partitions of ICT calendar days, today included),
  with a time-window freshness policy: the Dagster freshness daemon marks it stale when the
  sidecar has reported no materialization for `freshness_fail_s` (a Feed class may set it);
- asset check `<worker_id>` / `heartbeat`: passed while the sidecar's `worker_state.heartbeat_at`
  for the feed is younger than `heartbeat_timeout_s` (default 90 s) and its disk spool (batches
  the database did not take) holds nothing older than `SPOOL_ALERT_S` (an old spool fails it);
- sensor `<worker_id>_feed` (running by default). Its ON/OFF state **is** the operator's switch
  for the feed: the sidecar polls it (`ingestion_pipelines.dagster_api.feed_switches.FeedControl`) and
  starts or stops the feed within its refresh interval. While on, every tick (30 s) reads
  `worker_state` and reports the `heartbeat` check evaluation.

Loading these definitions reads no database and opens no connection.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from sqlalchemy import Engine, select

from ingestion_pipelines.core.redaction import redact
from ingestion_pipelines.core.timezones import ICT_NAME
from ingestion_pipelines.dagster_api.names import KIND_TAG
from ingestion_pipelines.dagster_api.names import feed_sensor_name as sensor_name
from ingestion_pipelines.feeds.base import Feed, feed_classes
from ingestion_pipelines.resources.database import DatabaseResource
from ingestion_pipelines.storage.tables import worker_state
from ingestion_pipelines.vnmarket import calendar as market_calendar

ICT_TIMEZONE = ICT_NAME
FEED_START_DATE = "2025-01-01"
GROUP = "feeds"
HEARTBEAT_CHECK = "heartbeat"
SENSOR_INTERVAL_S = 30
HEARTBEAT_TIMEOUT_S = 90.0
FRESHNESS_FAIL_S = 15 * 60
# While the check passes and nothing changes, re-report it at most this often (a failing check
# is reported on every tick, so the silence it describes stays current).
PASSING_REPORT_EVERY_S = 300
_ERROR_CHARS = 500
# A spooled batch older than this means the database has refused the feed's rows that long.
SPOOL_ALERT_S = 300.0


def feed_partitions_def() -> dg.DailyPartitionsDefinition:
    """ICT calendar days; end_offset=1 so that today's partition exists while ticks arrive."""
    return dg.DailyPartitionsDefinition(
        start_date=FEED_START_DATE, timezone=ICT_TIMEZONE, end_offset=1
    )


def heartbeat_timeout_s(feed: type[Feed]) -> float:
    """Seconds without a message after which the feed is reported unhealthy."""
    return float(getattr(feed, "heartbeat_timeout_s", HEARTBEAT_TIMEOUT_S))


# ---- the heartbeat check ------------------------------------------------------------------


@dataclass(frozen=True)
class HeartbeatVerdict:
    """The outcome of the heartbeat check for one feed at one moment."""

    worker_id: str
    passed: bool
    severity: dg.AssetCheckSeverity
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def evaluation(self) -> dg.AssetCheckEvaluation:
        """As an event a sensor reports (runless)."""
        return dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey([self.worker_id]),
            check_name=HEARTBEAT_CHECK,
            passed=self.passed,
            severity=self.severity,
            description=self.description,
            metadata=self.metadata,
        )

    def result(self) -> dg.AssetCheckResult:
        """As the result of executing the check in a run (the UI's "Execute" button)."""
        return dg.AssetCheckResult(
            asset_key=dg.AssetKey([self.worker_id]),
            check_name=HEARTBEAT_CHECK,
            passed=self.passed,
            severity=self.severity,
            description=self.description,
            metadata=self.metadata,
        )


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def judge_heartbeat(
    worker_id: str,
    row: Mapping[str, Any] | None,
    *,
    now: datetime | None = None,
    timeout_s: float = HEARTBEAT_TIMEOUT_S,
) -> HeartbeatVerdict:
    """Judge a `worker_state` row (None: the feed never reported) at `now`."""
    now = now or datetime.now(UTC)
    base: dict[str, Any] = {"timeout_s": float(timeout_s)}
    if row is None:
        return HeartbeatVerdict(
            worker_id,
            False,
            dg.AssetCheckSeverity.WARN,
            f"{worker_id} has never reported: no worker_state row for it "
            "(is `ingest sidecar` running with this feed enabled?)",
            {**base, "status": "never reported"},
        )
    status = str(row.get("status") or "unknown")
    heartbeat_at = _aware(row.get("heartbeat_at"))
    last_success_at = _aware(row.get("last_success_at"))
    last_error = redact(str(row.get("last_error") or ""))[:_ERROR_CHARS]
    metadata: dict[str, Any] = {**base, "status": status}
    if last_success_at is not None:
        metadata["last_success_at"] = dg.MetadataValue.timestamp(last_success_at)
    if last_error:
        metadata["last_error"] = dg.MetadataValue.text(last_error)
    error_text = f"; last error: {last_error}" if last_error else "; no error recorded"
    if heartbeat_at is None:
        return HeartbeatVerdict(
            worker_id,
            False,
            dg.AssetCheckSeverity.WARN,
            f"{worker_id} has never sent a heartbeat (status {status}){error_text}",
            metadata,
        )
    age_s = (now - heartbeat_at).total_seconds()
    metadata["heartbeat_at"] = dg.MetadataValue.timestamp(heartbeat_at)
    metadata["silent_s"] = round(max(age_s, 0.0), 1)
    spool_problem = _judge_spool(row.get("details"), now, metadata)
    if age_s < timeout_s and spool_problem is not None:
        return HeartbeatVerdict(
            worker_id, False, dg.AssetCheckSeverity.ERROR, f"{worker_id}: {spool_problem}", metadata
        )
    if age_s < timeout_s:
        return HeartbeatVerdict(
            worker_id,
            True,
            dg.AssetCheckSeverity.ERROR,
            f"{worker_id} is alive: last heartbeat {_duration(age_s)} ago (status {status})"
            + _spool_text(metadata),
            metadata,
        )
    return HeartbeatVerdict(
        worker_id,
        False,
        dg.AssetCheckSeverity.ERROR,
        f"{worker_id} has been silent for {_duration(age_s)} "
        f"(last heartbeat {heartbeat_at:%Y-%m-%d %H:%M:%S} UTC, limit {_duration(timeout_s)}, "
        f"status {status}){error_text}",
        metadata,
    )


def _judge_spool(details: Any, now: datetime, metadata: dict[str, Any]) -> str | None:
    """Adds the spool's size and age to `metadata`; the problem when its oldest batch is older
    than `SPOOL_ALERT_S`, else None."""
    if not isinstance(details, Mapping) or "spool_bytes" not in details:
        return None
    size = int(details.get("spool_bytes") or 0)
    metadata["spool_bytes"] = size
    oldest = details.get("spool_oldest_at")
    if not oldest:
        return None
    oldest_at = _aware(datetime.fromisoformat(oldest))
    age_s = (now - oldest_at).total_seconds()
    metadata["spool_oldest_at"] = dg.MetadataValue.timestamp(oldest_at)
    metadata["spool_age_s"] = round(max(age_s, 0.0), 1)
    if age_s < SPOOL_ALERT_S:
        return None
    return (
        f"its disk spool holds {size:,} bytes of batches the database has not taken for "
        f"{_duration(age_s)} (limit {_duration(SPOOL_ALERT_S)}): is the database reachable?"
    )


def _spool_text(metadata: Mapping[str, Any]) -> str:
    if not metadata.get("spool_bytes"):
        return ""
    age = metadata.get("spool_age_s")
    return f"; disk spool {metadata['spool_bytes']:,} bytes" + (
        f", oldest batch {_duration(age)} old" if age is not None else ""
    )


def read_worker_state(engine: Engine, worker_id: str) -> dict[str, Any] | None:
    """The `worker_state` row of `worker_id`, or None."""
    with engine.connect() as conn:
        row = (
            conn.execute(select(worker_state).where(worker_state.c.worker_id == worker_id))
            .mappings()
            .first()
        )
    return dict(row) if row is not None else None


def check_heartbeat(
    engine: Engine,
    worker_id: str,
    *,
    now: datetime | None = None,
    timeout_s: float = HEARTBEAT_TIMEOUT_S,
) -> HeartbeatVerdict:
    """Read `worker_state` and judge the heartbeat of feed `worker_id` (inside trading sessions
    only, for a feed of the Vietnamese market)."""
    return judge_feed(worker_id, read_worker_state(engine, worker_id), now=now, timeout_s=timeout_s)


def judge_feed(
    worker_id: str,
    row: Mapping[str, Any] | None,
    *,
    now: datetime | None = None,
    timeout_s: float = HEARTBEAT_TIMEOUT_S,
) -> HeartbeatVerdict:
    """The heartbeat verdict, by the market calendar for a feed in `FEED_EXCHANGES`: outside
    trading sessions (night, lunch, weekends, holidays) silence is expected and the check passes
    saying so; inside a session the sidecar must be alive and data must have arrived within
    `FRESHNESS_FAIL_S` of the session's start or the last commit (an empty session alerts)."""
    now = now or datetime.now(UTC)
    exchange = market_calendar.FEED_EXCHANGES.get(worker_id)
    if exchange is None or row is None:
        # A feed that never reported is not silent, it is not set up: say so at any hour.
        return judge_heartbeat(worker_id, row, now=now, timeout_s=timeout_s)
    state = market_calendar.market_state(now, exchange)
    market = {"market": f"{exchange} {'open' if state.open else 'closed'}: {state.reason}"}
    if not state.open:
        return HeartbeatVerdict(
            worker_id,
            True,
            dg.AssetCheckSeverity.WARN,
            f"{worker_id}: silence expected, {state.reason}; not judged until the next session "
            f"at {state.next_open:%Y-%m-%d %H:%M} ICT",
            {**market, "next_session": dg.MetadataValue.timestamp(state.next_open)},
        )
    verdict = judge_heartbeat(worker_id, row, now=now, timeout_s=timeout_s)
    if not verdict.passed:
        return verdict
    last_data = _aware((row or {}).get("last_success_at"))
    silent_since = max(state.session.start, last_data) if last_data else state.session.start
    silent_s = (now - silent_since).total_seconds()
    metadata = {**verdict.metadata, **market, "data_silent_s": round(silent_s, 1)}
    if silent_s < FRESHNESS_FAIL_S:
        return HeartbeatVerdict(worker_id, True, verdict.severity, verdict.description, metadata)
    what = (
        f"no data since {last_data.astimezone(market_calendar.ICT):%H:%M} ICT"
        if last_data and last_data >= state.session.start
        else f"no data in the {state.session.name} session since {state.session.start:%H:%M} ICT"
    )
    return HeartbeatVerdict(
        worker_id,
        False,
        dg.AssetCheckSeverity.ERROR,
        f"{worker_id}: {what} on a trading day ({_duration(silent_s)}, limit "
        f"{_duration(FRESHNESS_FAIL_S)}), although the sidecar is alive",
        metadata,
    )


# ---- definitions --------------------------------------------------------------------------


def feed_asset_spec(feed: type[Feed]) -> dg.AssetSpec:
    """The external asset spec of a feed's table (materialized by the sidecar's reports)."""
    worker_id = feed.worker_id
    fail_s = getattr(feed, "freshness_fail_s", FRESHNESS_FAIL_S)
    freshness = (
        dg.FreshnessPolicy.time_window(fail_window=timedelta(seconds=fail_s)) if fail_s else None
    )
    return dg.AssetSpec(
        key=dg.AssetKey([worker_id]),
        group_name=GROUP,
        description=(
            f"{feed.description or feed.__doc__ or worker_id}\n\n"
            f"Websocket feed run by the sidecar (`ingest sidecar`), outside Dagster runs; the "
            f"sidecar reports a materialization of the ICT day's partition as data arrives. "
            f"Switch it on/off with the sensor `{sensor_name(worker_id)}`."
        ),
        partitions_def=feed_partitions_def(),
        kinds={"websocket", "sql"},
        tags={KIND_TAG: "feed"},
        metadata={
            "worker_id": worker_id,
            "tables": dg.MetadataValue.json(list(feed.tables)),
            "switch_sensor": sensor_name(worker_id),
            "heartbeat_timeout_s": heartbeat_timeout_s(feed),
        },
        freshness_policy=freshness,
    )


def feed_heartbeat_check(feed: type[Feed]) -> dg.AssetChecksDefinition:
    """The declared `heartbeat` check. The switch sensor reports it every tick; executing it
    from the UI gives the same judgement on demand."""
    worker_id = feed.worker_id
    timeout_s = heartbeat_timeout_s(feed)

    @dg.asset_check(
        asset=dg.AssetKey([worker_id]),
        name=HEARTBEAT_CHECK,
        description=(
            f"The sidecar's heartbeat for {worker_id} (worker_state.heartbeat_at) is younger "
            f"than {timeout_s:g} s. Reported by the sensor {sensor_name(worker_id)} while it runs."
        ),
        blocking=False,
    )
    def _heartbeat(database: DatabaseResource) -> dg.AssetCheckResult:
        return check_heartbeat(database.engine(), worker_id, timeout_s=timeout_s).result()

    return _heartbeat


def _cursor(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def feed_switch_sensor(feed: type[Feed]) -> dg.SensorDefinition:
    """The sensor that turns the feed on and off in the sidecar when its switch changes."""
    worker_id = feed.worker_id
    timeout_s = heartbeat_timeout_s(feed)

    @dg.sensor(
        name=sensor_name(worker_id),
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"The switch of the {worker_id} feed: while this sensor runs, the sidecar runs the "
            f"feed; stop it to stop the feed (the sidecar follows within its refresh interval). "
            f"Each tick reports the `{HEARTBEAT_CHECK}` check of {worker_id} from worker_state."
        ),
    )
    def _switch(context: dg.SensorEvaluationContext, database: DatabaseResource):
        now = datetime.now(UTC)
        try:
            verdict = check_heartbeat(database.engine(), worker_id, now=now, timeout_s=timeout_s)
        except Exception as exc:  # noqa: BLE001 - the tick fails with a message safe to show
            raise RuntimeError(
                f"{worker_id}: cannot read worker_state: {redact(f'{type(exc).__name__}: {exc}')}"
            ) from None
        previous = _cursor(context.cursor)
        outcome = [verdict.passed, verdict.severity.value]
        due = (
            not verdict.passed
            or previous.get("outcome") != outcome
            or now.timestamp() - float(previous.get("reported_at", 0)) >= PASSING_REPORT_EVERY_S
        )
        if not due:
            return dg.SensorResult(skip_reason=f"unchanged: {verdict.description}")
        context.log.info(verdict.description)
        cursor = json.dumps({"outcome": outcome, "reported_at": now.timestamp()})
        return dg.SensorResult(asset_events=[verdict.evaluation()], cursor=cursor)

    return _switch


def defs() -> dg.Definitions:
    """An external asset, its heartbeat check and its switch sensor for every feed."""
    feeds = feed_classes()
    return dg.Definitions(
        assets=[feed_asset_spec(feed) for feed in feeds.values()],
        asset_checks=[feed_heartbeat_check(feed) for feed in feeds.values()],
        sensors=[feed_switch_sensor(feed) for feed in feeds.values()],
    )
