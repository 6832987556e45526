"""The `lyngsat` worker: its settings, and the Dagster asset, job and schedule that run
`crawl.LyngsatCrawl` (Dagster is imported when the definitions are built, not when the worker
catalogue loads this module).

LyngSat writes three tables from one page, and keeps counts per satellite, so it is a Python
source with its own asset rather than a one-table `Source`: it gets the factory's pool per
worker, retry policy, run logging and progress on `progress:<run_id>`.
"""

# (no `from __future__ import annotations`: Dagster reads the asset's annotations at build time)

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field, field_validator

from ingestion_pipelines.config.workers import ScheduledSettings, WorkerSpec, register
from ingestion_pipelines.core import url_policy

WORKER_ID = "lyngsat"
DESCRIPTION = (
    "LyngSat satellite pages (behind an anti-bot challenge: cleared once in Chromium, then "
    "HTTP): satellites, their transponders and channels"
)


class LyngsatSettings(ScheduledSettings):
    """Settings of `lyngsat`: where LyngSat is, which regions list the satellites to crawl, or
    which satellite pages exactly (`satellites`, when set, replaces the regions)."""

    base_url: str = "https://www.lyngsat.com"
    cron: str = "30 3 * * 1"  # Mondays 03:30 ICT: the charts change by the week
    regions: list[str] = Field(
        default_factory=lambda: ["asia", "europe", "atlantic", "america"],
        description="region index pages the satellites are discovered from (europe.html...)",
    )
    satellites: list[str] = Field(
        default_factory=list,
        description="satellite page paths (Astra-1KR-1L-1M-1N.html); when set, only these",
    )
    flaresolverr_url: str | None = Field(
        None,
        description="clear challenges through this FlareSolverr (POST /v1) instead of Chromium",
    )

    @field_validator("flaresolverr_url")
    @classmethod
    def _service_url(cls, value: str | None) -> str | None:
        return url_policy.check_optional_url(value, url_policy.CRAWL_SCHEMES, "flaresolverr_url")

    concurrency: int = Field(4, ge=1, le=64, description="satellite pages fetched at once")
    rate_limit_per_s: float | None = Field(1.0, gt=0, le=1000, allow_inf_nan=False)


register(WorkerSpec(WORKER_ID, "scheduled", LyngsatSettings, DESCRIPTION))


def build_lyngsat_defs(cron: str | None = None) -> Any:
    """The asset, job and schedule of `lyngsat` (a `sources.factory.SourceDefs`)."""
    import dagster as dg

    from ingestion_pipelines.browser.resource import BrowserResource
    from ingestion_pipelines.dagster_api.names import WORKER_TAG
    from ingestion_pipelines.http_client.resource import HttpClientResource
    from ingestion_pipelines.resources.database import DatabaseResource
    from ingestion_pipelines.resources.redis import RedisResource
    from ingestion_pipelines.resources.worker_config import WorkerConfigResource
    from ingestion_pipelines.sources.factory import (
        TIMEZONE,
        Progress,
        SourceDefs,
        SourceRunConfig,
    )

    @dg.asset(
        name=WORKER_ID,
        group_name="crawl",
        description=DESCRIPTION,
        retry_policy=dg.RetryPolicy(
            max_retries=2, delay=60, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
        ),
        pool=f"worker/{WORKER_ID}",
        op_tags={WORKER_TAG: WORKER_ID},
        kinds={"python", "sql", "chromium"},
        metadata={
            "tables": "satellite, satellite_transponder, satellite_channel",
            "dagster/table_name": "satellite_transponder",
        },
        freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(days=8)),
    )
    def lyngsat(
        context: dg.AssetExecutionContext,
        config: SourceRunConfig,
        worker_config: WorkerConfigResource,
        database: DatabaseResource,
        http: HttpClientResource,
        redis: RedisResource,
        browser: BrowserResource,
    ) -> dg.MaterializeResult:
        from ingestion_pipelines.storage.logs import run_logging

        with run_logging(context, WORKER_ID):
            settings = worker_config.resolve_for_run(WORKER_ID, config).settings
            progress = Progress(WORKER_ID, context.run_id, redis.client(feature="crawl progress"))
            result = run_lyngsat(settings, http, browser, database, context.run_id, progress)
            metadata = result.metadata()
            metadata["captured_at"] = dg.MetadataValue.timestamp(datetime.now(UTC))
            return dg.MaterializeResult(metadata=metadata)

    job = dg.define_asset_job(
        f"{WORKER_ID}_job", selection=[lyngsat.key], tags={WORKER_TAG: WORKER_ID}
    )
    cron_schedule = cron or LyngsatSettings.model_fields["cron"].default

    @dg.schedule(
        name=f"{WORKER_ID}_schedule",
        cron_schedule=cron_schedule,
        execution_timezone=TIMEZONE,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"{WORKER_ID}: {cron_schedule} ({TIMEZONE})",
    )
    def lyngsat_schedule(_context: dg.ScheduleEvaluationContext):
        return dg.RunRequest(tags={WORKER_TAG: WORKER_ID})

    return SourceDefs(lyngsat, job, lyngsat_schedule)


def run_lyngsat(settings, http, browser, database, run_id: str | None, progress=None):
    """One crawl with the run's resources: an HTTP session whose challenges are cleared by the
    browser (or FlareSolverr), failures' evidence in artifact storage. Raises `dg.Failure`
    naming the worker, the URL and the cause."""
    import dagster as dg
    from sqlalchemy.exc import SQLAlchemyError

    from ingestion_pipelines.browser.clearance import ClearanceError, ClearedFetcher
    from ingestion_pipelines.core.errors import is_transient
    from ingestion_pipelines.http_client.errors import HttpFetchError
    from ingestion_pipelines.sources.base import SourceError
    from ingestion_pipelines.sources.failures import storage_failure
    from ingestion_pipelines.sources.lyngsat.crawl import LyngsatCrawl

    artifacts = browser.artifacts()
    artifacts.prune()
    with (
        http.session(
            WORKER_ID,
            impersonate=settings.impersonate,
            timeout_s=settings.timeout_s,
            proxy=settings.proxy,
            rate_limit_per_s=settings.rate_limit_per_s,
        ) as session,
        browser.pool(
            proxy=settings.proxy,
            rate_limiter=http.rate_limiter(),
            rate_limit_per_s=settings.rate_limit_per_s,
        ) as lazy,
    ):
        session.start_deadline(settings.run_timeout_s)
        crawl = LyngsatCrawl(
            settings,
            ClearedFetcher(
                session, browser.solver(lazy, settings.proxy, settings.flaresolverr_url)
            ),
            lazy,
            artifacts,
            database.data_engine(settings.database_url),
            database.engine(),
            run_id=run_id,
            progress=progress,
        )
        try:
            return crawl.run()
        except (SourceError, HttpFetchError, ClearanceError) as exc:
            metadata = {"evidence": crawl.result.evidence} if crawl.result.evidence else None
            raise dg.Failure(str(exc), allow_retries=is_transient(exc), metadata=metadata) from None
        except SQLAlchemyError as exc:
            data_url = settings.database_url or database.control_url()
            raise storage_failure(WORKER_ID, data_url, settings.base_url, exc) from None
