"""The control plane's Dagster definitions: the audited `config_change` job and the alert
sensors.

- job `config_change` (op `apply_config_change`): validates and writes one `worker_config` row
  (or deletes it, `unset: true`). The run is the audit trail: its tags say which worker and key
  (`ingest/worker`, `ingest/config_key`) and who asked, its log and its output metadata give
  the old and new value (secrets masked), and the row's `updated_by` names the run. Who asked is
  the identity the authenticating proxy vouched for (run tag `ingest/identity`, set only by
  `control/operator_webserver.py` from `X-Forwarded-User`); a caller-supplied `requested_by` is
  recorded apart, as a claim (`updated_by` then reads "unverified claim: ..."). `ingest config set|unset` launches it over GraphQL; the launchpad works too.
- sensor `ingest_run_alerts`: run failures of any job, and the recovery when a later run of the
  same job for the same worker succeeds.
- sensor `ingest_check_alerts`: failed asset checks (e.g. `rows_present`), and stale feeds (the
  feeds' `heartbeat` check, reported by their switch sensors), with their recoveries.

Both sensors keep their state (open incidents, undelivered messages) in their cursor, so an
incident is announced once and its recovery once; see `control/alerts.py`.
"""

import json
import os
import time
from datetime import UTC, datetime

import dagster as dg

from ingestion_pipelines.config.chain import ConfigChain, ConfigError, display_value
from ingestion_pipelines.control.alerts import (
    AlertBook,
    Signal,
    deliver_alert,
    describe_route,
    webhook_for,
)
from ingestion_pipelines.core.redaction import redact
from ingestion_pipelines.core.settings import get_settings
from ingestion_pipelines.dagster_api.names import (
    CONFIG_KEY_TAG,
    IDENTITY_TAG,
    KIND_TAG,
    MAX_RETRIES_TAG,
    REQUESTED_BY_TAG,
    RETRY_NUMBER_TAG,
    WILL_RETRY_TAG,
    WORKER_TAG,
)
from ingestion_pipelines.resources.worker_config import WorkerConfigResource
from ingestion_pipelines.sources.failures import error_text

UNVERIFIED = "unverified claim"
CONFIG_JOB = "config_change"
CONFIG_OP = "apply_config_change"
GLOBAL = "global"
RUN_ALERTS_SENSOR = "ingest_run_alerts"
CHECK_ALERTS_SENSOR = "ingest_check_alerts"
HEARTBEAT_CHECK = "heartbeat"
DEFAULT_ALERT_INTERVAL_S = 30
# On its first tick the run sensor looks this far back, so a failure just before a daemon
# restart is not lost.
FIRST_LOOKBACK_S = 300
MAX_RUNS_PER_TICK = 200
REMEMBERED_RUNS = 300
SETTLE_S = 2.0


def alert_interval_s() -> int:
    """`INGEST_ALERT_INTERVAL_S` (read when the definitions load), default 30 s."""
    raw = os.environ.get("INGEST_ALERT_INTERVAL_S")
    try:
        return max(1, int(float(raw))) if raw else DEFAULT_ALERT_INTERVAL_S
    except ValueError:
        return DEFAULT_ALERT_INTERVAL_S


# ---- config_change ----------------------------------------------------------------------------


class ConfigChangeConfig(dg.Config):
    """One change to `worker_config`."""

    worker_id: str | None = None  # None (or "global"): the global row
    key: str
    value: str | None = None  # the new value as JSON text; ignored when unset
    unset: bool = False
    requested_by: str = ""


def secret_key(worker_id: str | None, key: str) -> bool:
    from ingestion_pipelines.config.workers import catalogue, get_worker

    specs = [get_worker(worker_id)] if worker_id else catalogue().values()
    return any(key in spec.settings.secret_keys() for spec in specs)


def check_key(worker_id: str | None, key: str) -> None:
    """Raise `ConfigError` unless `key` is a setting of `worker_id` (of some worker: global)."""
    from ingestion_pipelines.config.workers import catalogue, get_worker

    specs = [get_worker(worker_id)] if worker_id else list(catalogue().values())
    if not any(key in spec.settings.model_fields for spec in specs):
        known = sorted({k for spec in specs for k in spec.settings.model_fields})
        raise ConfigError(
            f"{worker_id or 'any worker'}: unknown key {key!r}; known keys: {', '.join(known)}"
        )


def parse_value(text: str | None):
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise ConfigError(f"value is not JSON text: {redact(text)!r}") from None


@dg.op(name=CONFIG_OP, description="Validate and write (or delete) one worker_config row.")
def apply_config_change(
    context: dg.OpExecutionContext, config: ConfigChangeConfig, worker_config: WorkerConfigResource
) -> dg.Output:
    worker_id = None if config.worker_id in (None, "", GLOBAL) else config.worker_id
    scope = worker_id or GLOBAL
    claim = config.requested_by or context.run.tags.get(REQUESTED_BY_TAG) or "unknown"
    identity = context.run.tags.get(IDENTITY_TAG)
    who = (identity or f"{UNVERIFIED}: {claim}")[:200]
    # Tags for runs started elsewhere (the launchpad): the run stays findable by worker and key.
    missing = {
        k: v
        for k, v in {WORKER_TAG: scope, CONFIG_KEY_TAG: config.key, REQUESTED_BY_TAG: claim}.items()
        if k not in context.run.tags
    }
    if missing:
        context.instance.add_run_tags(context.run_id, missing)
    chain: ConfigChain = worker_config.chain()
    try:
        is_secret = secret_key(worker_id, config.key)
        updated_by = f"{who} (dagster run {context.run_id[:8]})"
        if config.unset:
            check_key(worker_id, config.key)
            old = chain.unset(worker_id, config.key)
            new = None
            action = "unset"
        else:
            value = parse_value(config.value)
            chain.validate(worker_id, config.key, value)
            old, new = chain.set(worker_id, config.key, value, updated_by=updated_by)
            action = "set"
    except (ConfigError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise dg.Failure(
            description=f"config {scope}.{config.key} not changed: {redact(str(message))}",
            allow_retries=False,
        ) from None
    old_text, new_text = display_value(old, is_secret), display_value(new, is_secret)
    if action == "unset":
        new_text = "(unset: the next layer of the chain applies)"
    context.log.info(f"config {scope}.{config.key} {action} by {who}: {old_text} -> {new_text}")
    change = {
        "worker_id": scope,
        "key": config.key,
        "action": action,
        "old": old_text,
        "new": new_text,
        "changed_by": who,
        "identity": identity,
        "requested_by": claim,
        "changed_at": datetime.now(UTC).isoformat(),
    }
    return dg.Output(
        change,
        metadata={
            "worker_id": scope,
            "key": config.key,
            "action": action,
            "old_value": dg.MetadataValue.text(old_text),
            "new_value": dg.MetadataValue.text(new_text),
            "changed_by": who,
            "identity": identity or "(none: no authenticating proxy)",
            "requested_by": claim,
            "secret": is_secret,
        },
    )


@dg.job(
    name=CONFIG_JOB,
    description=(
        "Change one worker_config value (the audited way: this run records who, when, the old "
        "and the new value). Launched by `ingest config set|unset`."
    ),
    tags={MAX_RETRIES_TAG: "0", KIND_TAG: "control"},
)
def config_change_job():
    apply_config_change()


# ---- alerts -----------------------------------------------------------------------------------


def _send_all(context, book: AlertBook, chain: ConfigChain) -> None:
    dagster_url = get_settings().dagster_url

    def send(alert) -> None:
        url = webhook_for(alert.worker_id, chain)
        if not url:
            context.log.warning(f"alert (no alert_webhook configured): {alert.summary()}")
            return
        deliver_alert(url, alert, dagster_url=dagster_url)
        context.log.info(f"alert sent to {describe_route(url)}: {alert.summary()}")

    book.deliver(send, context.log)


def _run_error(instance, run_id: str) -> str:
    """The first step failure's message of a run, else its run failure message."""
    for event_type in (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE):
        for entry in instance.all_logs(run_id, of_type=event_type):
            event = entry.dagster_event
            data = getattr(event, "event_specific_data", None)
            error = getattr(data, "error", None)
            # "Exceeded max_retries of 3" alone says nothing: the cause chain says what failed
            text = error_text(error) or (event.message if event else None)
            if text:
                return text.strip()
    return ""


def run_signals(instance, records) -> list[Signal]:
    """A Signal per finished run (FAILURE: failing; SUCCESS: healthy), keyed by job and worker."""
    signals = []
    for record in records:
        run = record.dagster_run
        worker = run.tags.get(WORKER_TAG)
        key = f"run:{run.job_name}:{worker or '-'}"
        at = record.update_timestamp.timestamp()
        if run.status == dg.DagsterRunStatus.FAILURE:
            if run.tags.get(WILL_RETRY_TAG) == "true":
                continue  # Dagster retries it: only the last attempt's outcome is news
            retry = run.tags.get(RETRY_NUMBER_TAG)
            title = f"{run.job_name} run failed" + (
                f" (after {int(retry) + 1} attempts)" if retry else ""
            )
            signals.append(
                Signal(
                    key,
                    "run_failure",
                    worker,
                    True,
                    title,
                    _run_error(instance, run.run_id),
                    run.run_id,
                    at,
                )
            )
        elif run.status == dg.DagsterRunStatus.SUCCESS:
            signals.append(
                Signal(
                    key,
                    "run_failure",
                    worker,
                    False,
                    f"{run.job_name} run succeeded",
                    f"run {run.run_id} succeeded",
                    run.run_id,
                    at,
                )
            )
    return signals


def run_alerts_sensor(interval_s: int) -> dg.SensorDefinition:
    @dg.sensor(
        name=RUN_ALERTS_SENSOR,
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Posts run failures (once per failing job and worker, however many retries fail) "
            "and their recovery to the worker's alert_webhook."
        ),
    )
    def _sensor(context: dg.SensorEvaluationContext, worker_config: WorkerConfigResource):
        book = AlertBook.load(context.cursor)
        now = time.time()
        after = float(book.extra.get("updated_after") or now - FIRST_LOOKBACK_S)
        done = list(book.extra.get("done") or [])
        records = context.instance.get_run_records(
            filters=dg.RunsFilter(
                statuses=[dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS],
                updated_after=datetime.fromtimestamp(after, UTC),
            ),
            order_by="update_timestamp",
            ascending=True,
            limit=MAX_RUNS_PER_TICK,
        )
        # Dagster tags a failed run `dagster/will_retry` just after marking it failed: a run
        # updated in the last seconds is left for the next tick.
        records = [r for r in records if r.update_timestamp.timestamp() <= now - SETTLE_S]
        if records:
            book.extra["updated_after"] = max(r.update_timestamp.timestamp() for r in records)
        else:
            book.extra.setdefault("updated_after", after)
        # A finished run updated again later (tags added by the retry daemon...) is seen once.
        fresh = [r for r in records if r.dagster_run.run_id not in done]
        book.observe(run_signals(context.instance, fresh))
        book.extra["done"] = (done + [r.dagster_run.run_id for r in fresh])[-REMEMBERED_RUNS:]
        _send_all(context, book, worker_config.chain())
        return dg.SensorResult(cursor=book.dump())

    return _sensor


def stopped_sensors(instance) -> set[str]:
    """Names of the sensors an operator has stopped (a feed switched off)."""
    try:
        states = instance.all_instigator_state()
    except Exception:  # noqa: BLE001 - an instance without schedule storage (tests)
        return set()
    return {
        state.name
        for state in states
        if _enum_name(state.instigator_type) == "SENSOR" and _enum_name(state.status) == "STOPPED"
    }


def _enum_name(value) -> str:
    """The name of one of Dagster's status enums, read without importing its private module."""
    return getattr(value, "value", str(value))


def check_signals(
    records, now: float | None = None, switched_off: set[str] = frozenset()
) -> list[Signal]:
    """A Signal per asset check with a completed latest execution (heartbeat: a feed). A feed
    whose switch sensor (`<worker>_feed`) is stopped is healthy: nobody expects it to beat."""
    now = now or time.time()
    signals = []
    for check_key, record in records.items():
        worker = check_key.asset_key.path[-1]
        if check_key.name == HEARTBEAT_CHECK and f"{worker}_feed" in switched_off:
            title = "feed switched off"
            key = f"check:{check_key.asset_key.to_user_string()}:{check_key.name}"
            signals.append(Signal(key, "feed_stale", worker, False, title, title, None, now))
            continue
        status = _enum_name(record.status)
        if status not in ("SUCCEEDED", "FAILED"):
            continue
        asset = check_key.asset_key.to_user_string()
        feed = check_key.name == HEARTBEAT_CHECK
        kind = "feed_stale" if feed else "check_failed"
        failing = status == "FAILED"
        evaluation = None
        if record.event is not None and record.event.dagster_event is not None:
            evaluation = record.event.dagster_event.event_specific_data
        description = getattr(evaluation, "description", None) or ""
        severity = getattr(getattr(evaluation, "severity", None), "value", "")
        if feed:
            title = "feed stale (heartbeat check failed)" if failing else "feed heartbeat back"
        else:
            title = f"asset check {asset}/{check_key.name} " + ("failed" if failing else "passed")
            if failing and severity:
                title += f" ({severity})"
        signals.append(
            Signal(
                f"check:{asset}:{check_key.name}",
                kind,
                worker,
                failing,
                title,
                description,
                record.run_id or None,
                record.create_timestamp or now,
            )
        )
    return signals


def check_alerts_sensor(interval_s: int) -> dg.SensorDefinition:
    @dg.sensor(
        name=CHECK_ALERTS_SENSOR,
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Posts failed asset checks and stale feeds (their heartbeat check) to the worker's "
            "alert_webhook, once per incident, and a recovery message when it clears."
        ),
    )
    def _sensor(context: dg.SensorEvaluationContext, worker_config: WorkerConfigResource):
        book = AlertBook.load(context.cursor)
        keys = list(context.repository_def.asset_graph.asset_check_keys)
        latest = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
        book.observe(check_signals(latest, switched_off=stopped_sensors(context.instance)))
        _send_all(context, book, worker_config.chain())
        return dg.SensorResult(cursor=book.dump())

    return _sensor


def defs() -> dg.Definitions:
    from ingestion_pipelines.control import retention_defs

    interval = alert_interval_s()
    return dg.Definitions.merge(
        dg.Definitions(
            jobs=[config_change_job],
            sensors=[run_alerts_sensor(interval), check_alerts_sensor(interval)],
        ),
        retention_defs.defs(),
    )
