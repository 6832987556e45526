"""Calendar-aware freshness for sources that publish during business hours (`business_hours:`
in a defs.yaml; the rule: `vnmarket.business_hours`).

Dagster's freshness policies count wall-clock time, so a fixed window either fails on a Sunday
morning and through Tết or lets a silent business day pass. Such a source has instead:

- asset check `<worker_id>` / `fresh_in_business_hours`: passed while the business time since
  the asset's last materialization (a run that answered) is within the declared `silence`;
  nights, days off (weekends, the market calendar's holidays) add nothing;
- sensor `<worker_id>_business_freshness` (running by default): every tick judges it and reports
  the evaluation (always when failing or changed, else hourly), so an alert follows a silent
  business day without waiting for a run.
"""

import json
from datetime import UTC, datetime

import dagster as dg

from ingestion_pipelines.vnmarket.business_hours import Silence, judge

CHECK_NAME = "fresh_in_business_hours"
SENSOR_INTERVAL_S = 300
PASSING_REPORT_EVERY_S = 3600


def sensor_name(worker_id: str) -> str:
    """The name of the sensor reporting `worker_id`'s business-hours freshness."""
    return f"{worker_id}_business_freshness"


def last_answer(instance: dg.DagsterInstance, key: dg.AssetKey) -> datetime | None:
    """When the asset was last materialized (None: never)."""
    event = instance.get_latest_materialization_event(key)
    return None if event is None else datetime.fromtimestamp(event.timestamp, UTC)


def _verdict(worker_id, hours, last: datetime | None, watched: datetime, now: datetime) -> Silence:
    """The verdict on `last`; a source that has never answered is silent since the sensor first
    watched it (a new deployment is not failing before its first run could answer)."""
    if last is not None:
        return judge(worker_id, hours, last, now)
    waited = judge(worker_id, hours, watched, now)
    first = f"{worker_id} has never answered (watched since {watched:%Y-%m-%d %H:%M} UTC)"
    detail = "" if waited.passed else f": {waited.description}"
    return Silence(waited.passed, first + detail, waited.business_silence)


def evaluation(key: dg.AssetKey, verdict: Silence) -> dg.AssetCheckEvaluation:
    """The check evaluation a sensor reports for `verdict`."""
    return dg.AssetCheckEvaluation(
        asset_key=key,
        check_name=CHECK_NAME,
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=verdict.description,
        metadata=_metadata(verdict),
    )


def _metadata(verdict: Silence) -> dict:
    if verdict.business_silence is None:
        return {}
    return {"business_silence_min": int(verdict.business_silence.total_seconds() // 60)}


def business_freshness_defs(source) -> dg.Definitions:
    """The check and the sensor of `source` (nothing when it declares no business hours)."""
    hours = getattr(source, "business_hours", None)
    if hours is None:
        return dg.Definitions()
    worker_id = source.worker_id
    key = dg.AssetKey([worker_id])
    rule = (
        f"{hours.days} {hours.opens:%H:%M}-{hours.closes:%H:%M} ICT on the market calendar's "
        f"business days, at most {hours.silence} of business time without a run"
    )

    @dg.asset_check(asset=key, name=CHECK_NAME, description=rule, blocking=False)
    def _fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        now = datetime.now(UTC)
        verdict = judge(worker_id, hours, last_answer(context.instance, key), now)
        return dg.AssetCheckResult(
            passed=verdict.passed, description=verdict.description, metadata=_metadata(verdict)
        )

    @dg.sensor(
        name=sensor_name(worker_id),
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Reports {worker_id}'s `{CHECK_NAME}` check: {rule}.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        now = datetime.now(UTC)
        previous = json.loads(context.cursor) if context.cursor else {}
        watched = datetime.fromtimestamp(float(previous.get("watched", now.timestamp())), UTC)
        verdict = _verdict(worker_id, hours, last_answer(context.instance, key), watched, now)
        due = (
            not verdict.passed
            or previous.get("passed") != verdict.passed
            or now.timestamp() - float(previous.get("at", 0)) >= PASSING_REPORT_EVERY_S
        )
        if not due:
            return dg.SensorResult(skip_reason=f"unchanged: {verdict.description}")
        cursor = json.dumps(
            {"passed": verdict.passed, "at": now.timestamp(), "watched": watched.timestamp()}
        )
        return dg.SensorResult(asset_events=[evaluation(key, verdict)], cursor=cursor)

    return dg.Definitions(asset_checks=[_fresh], sensors=[_sensor])
