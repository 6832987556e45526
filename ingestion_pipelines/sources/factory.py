"""Turn a `Source` class into Dagster definitions: an asset with retries, a per-worker
concurrency pool, a freshness policy, asset checks and run metadata, plus its job and schedule."""

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import dagster as dg
import orjson
from loguru import logger
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from ingestion_pipelines.browser.resource import BrowserResource
from ingestion_pipelines.core.errors import is_transient
from ingestion_pipelines.core.timezones import ICT_NAME
from ingestion_pipelines.dagster_api.names import WORKER_TAG
from ingestion_pipelines.http_client.errors import HttpFetchError
from ingestion_pipelines.http_client.resource import HttpClientResource
from ingestion_pipelines.resources.database import DatabaseResource
from ingestion_pipelines.resources.redis import RedisResource
from ingestion_pipelines.resources.worker_config import WorkerConfigResource
from ingestion_pipelines.sources import providers_agree
from ingestion_pipelines.sources.base import Source, SourceError, TradingDayPartitions, Window
from ingestion_pipelines.sources.crawl_result import CrawlResult
from ingestion_pipelines.sources.dagster_warnings import quiet_backfill_policy_beta
from ingestion_pipelines.sources.declared_browser import fetch_session
from ingestion_pipelines.sources.expectations import judge_rows, scheduled_partition
from ingestion_pipelines.sources.failures import storage_failure
from ingestion_pipelines.sources.launch import RunOverrides
from ingestion_pipelines.sources.runner import crawl
from ingestion_pipelines.storage.logs import run_logging
from ingestion_pipelines.storage.types import UtcDateTime
from ingestion_pipelines.storage.validators import PersistentValidators
from ingestion_pipelines.vnmarket import calendar as market_calendar

TIMEZONE = ICT_NAME


class SourceRunConfig(RunOverrides):
    """Run config for a crawl: any key given here overrides the config chain for that run only
    (e.g. `{"base_url": "http://127.0.0.1:8700", "timeout_s": 5}`)."""


class Progress:
    """Reports done/total to the run's log at least every `every_s` and, with Redis, on the
    channel `progress:<run_id>`."""

    def __init__(self, worker_id: str, run_id: str, redis_client=None, every_s: float = 10.0):
        self.worker_id = worker_id
        self.channel = f"progress:{run_id}"
        self.redis = redis_client
        self.every_s = every_s
        self._last_log = time.monotonic()
        self._last_publish = 0.0

    def __call__(self, done: int, total: int) -> None:
        """Report that `done` of `total` requests are finished."""
        now = time.monotonic()
        percent = 100.0 * done / total if total else 100.0
        if now - self._last_log >= self.every_s:
            self._last_log = now
            logger.bind(worker_id=self.worker_id).info(
                "progress: {}/{} requests ({:.0f}%)", done, total, percent
            )
        if self.redis is not None and (now - self._last_publish >= 1.0 or done == total):
            self._last_publish = now
            message = {
                "worker_id": self.worker_id,
                "done": done,
                "total": total,
                "percent": percent,
            }
            try:
                self.redis.publish(self.channel, orjson.dumps(message))
            except Exception as exc:  # noqa: BLE001 - progress must never fail a crawl
                logger.bind(worker_id=self.worker_id).debug("progress publish failed: {}", exc)


@dataclass(frozen=True)
class SourceDefs:
    """What the factory builds for one source: its asset, job and schedule."""

    asset: dg.AssetsDefinition
    job: object  # what define_asset_job returns (an unresolved asset job)
    schedule: dg.ScheduleDefinition


def partitions_def(source: type[Source]) -> dg.TimeWindowPartitionsDefinition | None:
    """The partitions of a source's asset (None: unpartitioned)."""
    if source.partitions is None:
        return None
    if isinstance(source.partitions, TradingDayPartitions):
        return trading_day_partitions_def(source.partitions)
    # end_offset=1: today's partition exists, since the day's value is published the same day.
    return dg.DailyPartitionsDefinition(
        start_date=source.partitions.start, timezone=source.partitions.timezone, end_offset=1
    )


def trading_day_partitions_def(declared: TradingDayPartitions) -> dg.TimeWindowPartitionsDefinition:
    """Weekday partitions without the market's closed weekdays (`market_calendar`, reviewed up to
    its last year): a partition's window runs to the next weekday, so a Friday's covers the
    weekend, when nothing trades."""
    if date.fromisoformat(declared.start) < market_calendar.history_start():
        raise ValueError(
            f"trading-day partitions cannot start on {declared.start}, before the market's first "
            f"session ({market_calendar.history_start()})"
        )
    tz = ZoneInfo(declared.timezone)
    closed = [
        datetime.combine(day, datetime.min.time(), tz)
        for day in market_calendar.closed_weekdays(date.fromisoformat(declared.start))
    ]
    return dg.TimeWindowPartitionsDefinition(
        start=declared.start,
        fmt="%Y-%m-%d",
        cron_schedule="0 0 * * 1-5",
        timezone=declared.timezone,
        exclusions=closed,
        end_offset=1,
    )


def todays_partition(source: type[Source], when: datetime) -> str:
    """The partition a tick at `when` collects: that day in the partitions' timezone (today's
    partition exists, `end_offset=1`)."""
    return when.astimezone(ZoneInfo(source.partitions.timezone)).date().isoformat()


def _window(context: dg.AssetExecutionContext, source: type[Source]) -> Window | None:
    if source.partitions is None:
        return None
    tw = context.partition_time_window
    return Window(tw.start.date(), tw.end.date(), source.partitions.timezone)


def _rows_in_window(database: DatabaseResource, source: type[Source], settings, window) -> int:
    table = source.table
    query = select(func.count()).select_from(table)
    date_column = getattr(source, "date_column", None)
    if window is not None and date_column is not None:
        column = table.c[date_column]
        start, end = window.start, window.end
        if isinstance(column.type, UtcDateTime):  # a time column: the window's midnights
            zone = ZoneInfo(window.timezone)
            start, end = (datetime.combine(d, datetime.min.time(), zone) for d in (start, end))
        query = query.where(column >= start, column < end)
    with database.data_engine(settings.database_url).connect() as conn:
        return conn.execute(query).scalar_one()


def _rows_present(
    source: type[Source], window: Window | None, rows: int, covered: dict | None = None
) -> dg.AssetCheckResult:
    """`rows_present`, judged by the market calendar for workers with a publication deadline
    (a weekend or holiday holds no NAV: the check passes and says why)."""
    verdict = judge_rows(source.worker_id, source.table.name, window, rows, datetime.now(UTC))
    return dg.AssetCheckResult(
        check_name="rows_present",
        passed=verdict.passed,
        metadata={**verdict.metadata, **(covered or {})},
        description=verdict.description,
    )


# What each partition of a range run records: Dagster copies a range run's metadata into one
# materialization per partition, and serializing that copy is most of a long backfill's cost.
RANGE_METADATA_KEYS = ("partition_range", "records_fetched", "records_inserted", "records_rejected")


def _per_partition_metadata(metadata: dict, partitions: int, log) -> dict:
    """A run of one partition keeps its full metadata (whatever days its window spans: a trading
    day's window runs to the next trading day); a range run logs it once and records the
    `RANGE_METADATA_KEYS` on each partition."""
    if partitions <= 1:
        return metadata
    log.info(
        "run metadata for {}: {}",
        metadata["partition_range"],
        {k: v for k, v in metadata.items() if k != "captured_at"},
    )
    return {k: metadata[k] for k in RANGE_METADATA_KEYS if k in metadata}


def complete_check(result: CrawlResult, covered: dict | None = None) -> dg.AssetCheckResult:
    """`complete` (ERROR): the records fetched reach the source's own totals (`Expected`)."""
    expected = result.records_expected
    shortfall = result.shortfall
    description = None
    if expected is None:
        description = "the source reported no total for this run"
    elif shortfall:
        description = (
            f"{shortfall} records short: fetched {result.fetched} of the {expected} "
            f"the source reported (first families: "
            f"{', '.join(f'{k}={v}' for k, v in list(result.expected.items())[:5])})"
        )
    return dg.AssetCheckResult(
        check_name="complete",
        passed=shortfall == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "records_fetched": result.fetched,
            "records_expected": expected or 0,
            **(covered or {}),
        },
        description=description,
    )


@quiet_backfill_policy_beta()
def build_source_defs(source: type[Source], cron: str | None = None) -> SourceDefs:
    """The asset, job and schedule for `source`; `cron` overrides its default schedule."""
    worker_id = source.worker_id
    parts = partitions_def(source)
    key = list(source.key or (c.name for c in source.table.primary_key.columns))
    checks = [
        dg.AssetCheckSpec(
            "rejects_within_threshold",
            asset=worker_id,
            description="share of fetched records rejected to dead_letter is within reject_threshold",
        ),
        dg.AssetCheckSpec(
            "rows_present",
            asset=worker_id,
            description=f"`{source.table.name}` holds rows for what this run covered",
        ),
    ]
    checks.extend(providers_agree.check_specs(source))  # several providers: do they agree?
    if source.totals:  # without the source's own totals there is nothing to be complete against
        checks.append(
            dg.AssetCheckSpec(
                "complete",
                asset=worker_id,
                description="the run fetched every record the source itself said it holds",
            )
        )

    @dg.asset(
        name=worker_id,
        group_name=source.group,
        description=source.description or source.__doc__,
        partitions_def=parts,
        backfill_policy=dg.BackfillPolicy.single_run() if parts else None,
        retry_policy=dg.RetryPolicy(
            max_retries=3, delay=15, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
        ),
        pool=f"worker/{worker_id}",
        op_tags={WORKER_TAG: worker_id},
        deps=[dg.AssetKey([upstream]) for upstream in source.upstream],
        check_specs=checks,
        kinds={"python", "sql"},
        metadata={
            "table": source.table.name,
            "natural_key": ", ".join(key),
            "dagster/table_name": source.table.name,
        },
        freshness_policy=None  # judged by the business-hours check (sources/business_freshness)
        if getattr(source, "business_hours", None)
        else dg.FreshnessPolicy.time_window(fail_window=source.fresh_within),
    )
    def crawl_asset(
        context: dg.AssetExecutionContext,
        config: SourceRunConfig,
        worker_config: WorkerConfigResource,
        database: DatabaseResource,
        http: HttpClientResource,
        redis: RedisResource,
        browser: BrowserResource,  # started only by a `fetch: browser` declaration's first page
    ) -> dg.MaterializeResult:
        with run_logging(context, worker_id) as log:
            resolved = worker_config.resolve_for_run(worker_id, config)
            settings = resolved.settings
            window = _window(context, source)
            instance = source(settings, window)
            log.info(
                "crawling {} for {}",
                worker_id,
                f"{window.start}..{window.last_day}" if window else "now",
            )
            progress = Progress(worker_id, context.run_id, redis.client(feature="crawl progress"))
            validators = PersistentValidators(database.engine(), worker_id).load()
            with http.session(
                worker_id,
                impersonate=settings.impersonate,
                timeout_s=settings.timeout_s,
                proxy=settings.proxy,
                rate_limit_per_s=settings.rate_limit_per_s,
                validator_store=validators,
            ) as http_session:
                try:
                    fetching = fetch_session(
                        instance, http_session, browser, context.run_id, http.rate_limiter()
                    )
                    with fetching as session:
                        result = crawl(
                            instance,
                            session=session,
                            data_engine=database.data_engine(settings.database_url),
                            control_engine=database.engine(),
                            run_id=context.run_id,
                            progress=progress,
                        )
                except (SourceError, HttpFetchError) as exc:
                    # The error says whether a later run may succeed: a bad payload, a 404 or the
                    # run's deadline never; a 5xx or a 429 yes (the client retried it already).
                    raise dg.Failure(str(exc), allow_retries=is_transient(exc)) from None
                except SQLAlchemyError as exc:  # e.g. the database went away mid-run
                    data_url = settings.database_url or database.control_url()
                    raise storage_failure(worker_id, data_url, settings.base_url, exc) from None
            validators.save()
            data_engine = database.data_engine(settings.database_url)
            rows = _rows_in_window(database, source, settings, window)
            threshold = settings.reject_threshold
            metadata = result.metadata()
            # One evaluation per check covers the run's whole range (not one per partition,
            # which would cost an event each): its metadata names the range.
            covered = {"covers": f"{window.start}..{window.last_day}"} if window else {}
            if window is not None:
                metadata["partition_range"] = f"{window.start}..{window.last_day}"
            metadata["table"] = source.table.name
            metadata["captured_at"] = dg.MetadataValue.timestamp(datetime.now(UTC))
            partitions = len(context.partition_keys) if context.has_partition_key_range else 1
            metadata = _per_partition_metadata(metadata, partitions, log)
            return dg.MaterializeResult(
                metadata=metadata,
                check_results=[
                    dg.AssetCheckResult(
                        check_name="rejects_within_threshold",
                        passed=result.reject_share <= threshold,
                        severity=dg.AssetCheckSeverity.WARN,
                        metadata={
                            "rejected": result.rejected,
                            "share": result.reject_share,
                            **covered,
                        },
                    ),
                    _rows_present(source, window, rows, covered),
                    *([complete_check(result, covered)] if source.totals else []),
                    *(
                        [providers_agree.check_result(source, instance, data_engine, window)]
                        if providers_agree.has_providers(source)
                        else []
                    ),
                ],
            )

    job = dg.define_asset_job(
        f"{worker_id}_job", selection=[crawl_asset.key], tags={WORKER_TAG: worker_id}
    )
    cron_schedule = cron or source.Settings.model_fields["cron"].default

    @dg.schedule(
        name=f"{worker_id}_schedule",
        cron_schedule=cron_schedule,
        execution_timezone=TIMEZONE,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"{worker_id}: {cron_schedule} ({TIMEZONE})",
    )
    def crawl_schedule(context: dg.ScheduleEvaluationContext):
        tags = {WORKER_TAG: worker_id}
        waiting = [w for w in source.upstream if not _ever_materialized(context.instance, w)]
        if waiting:  # its first run would find the table it reads empty and fail
            return dg.SkipReason(f"{worker_id} reads what {waiting[0]} stores: not stored yet")
        if parts is None:
            return dg.RunRequest(tags=tags)
        when = context.scheduled_execution_time
        key = scheduled_partition(worker_id, source.partitions.timezone, when)
        return dg.RunRequest(partition_key=key, tags=tags)

    return SourceDefs(crawl_asset, job, crawl_schedule)


def _ever_materialized(instance: dg.DagsterInstance, worker_id: str) -> bool:
    return instance.get_latest_materialization_event(dg.AssetKey([worker_id])) is not None
