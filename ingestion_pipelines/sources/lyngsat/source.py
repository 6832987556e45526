"""`lyngsat`'s hook (defs/lyngsat/defs.yaml: worker id, group, description, settings, cron,
freshness, table): the code that owns its asset, and the run that calls `crawl.LyngsatCrawl`
(Dagster is imported when the definitions are built, not when the worker catalogue loads).

LyngSat writes three tables from one page and keeps counts per satellite, so it is not one table
of records fed to the crawl engine: its hook defines `asset_defs` (sources/declared_hooks.py),
an asset with the factory's pool per worker, retry policy, run logging and progress on
`progress:<run_id>`, built by the same `RestSource` component as every declared source.
"""

# (no `from __future__ import annotations`: Dagster reads the asset's annotations at build time)

from datetime import UTC, datetime
from typing import Any

from pydantic import create_model, field_validator

from ingestion_pipelines.core import url_policy
from ingestion_pipelines.sources.declared import DeclaredSource

# What the crawl writes (`crawl.LyngsatCrawl`); the declaration's table is the transponders'.
TABLES = "satellite, satellite_transponder, satellite_channel"


def _service_url(_cls, value: str | None) -> str | None:
    return url_policy.check_optional_url(value, url_policy.CRAWL_SCHEMES, "flaresolverr_url")


class SatellitePages(DeclaredSource):
    """Region pages, then satellite pages, into three tables: a hook owning its asset."""

    def __init_subclass__(cls, **kwargs):
        if "Settings" in cls.__dict__:  # the declared settings, the FlareSolverr URL checked
            cls.Settings = create_model(
                cls.Settings.__name__,
                __base__=cls.Settings,
                __validators__={
                    "service_url": field_validator("flaresolverr_url")(classmethod(_service_url))
                },
            )
        super().__init_subclass__(**kwargs)  # registers the worker with those settings

    @classmethod
    def asset_defs(cls, cron: str | None = None) -> Any:
        """The asset, job and schedule of the worker (a `sources.factory.SourceDefs`)."""
        return _build_defs(cls, cron)


def _build_defs(source: type[SatellitePages], cron: str | None) -> Any:
    """The asset, job and schedule of the worker `source` declares."""
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

    worker_id = source.worker_id

    @dg.asset(
        name=worker_id,
        group_name=source.group,
        description=source.description,
        retry_policy=dg.RetryPolicy(
            max_retries=2, delay=60, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
        ),
        pool=f"worker/{worker_id}",
        op_tags={WORKER_TAG: worker_id},
        kinds={"python", "sql", "chromium"},
        metadata={"tables": TABLES, "dagster/table_name": source.table.name},
        freshness_policy=dg.FreshnessPolicy.time_window(fail_window=source.fresh_within),
    )
    def crawl_asset(
        context: dg.AssetExecutionContext,
        config: SourceRunConfig,
        worker_config: WorkerConfigResource,
        database: DatabaseResource,
        http: HttpClientResource,
        redis: RedisResource,
        browser: BrowserResource,
    ) -> dg.MaterializeResult:
        from ingestion_pipelines.storage.logs import run_logging

        with run_logging(context, worker_id):
            settings = worker_config.resolve_for_run(worker_id, config).settings
            progress = Progress(worker_id, context.run_id, redis.client(feature="crawl progress"))
            result = run_lyngsat(
                worker_id, settings, http, browser, database, context.run_id, progress
            )
            metadata = result.metadata()
            metadata["captured_at"] = dg.MetadataValue.timestamp(datetime.now(UTC))
            return dg.MaterializeResult(metadata=metadata)

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
    def crawl_schedule(_context: dg.ScheduleEvaluationContext):
        return dg.RunRequest(tags={WORKER_TAG: worker_id})

    return SourceDefs(crawl_asset, job, crawl_schedule)


def run_lyngsat(
    worker_id: str, settings, http, browser, database, run_id: str | None, progress=None
):
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
            worker_id,
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
            worker_id=worker_id,
        )
        try:
            return crawl.run()
        except (SourceError, HttpFetchError, ClearanceError) as exc:
            metadata = {"evidence": crawl.result.evidence} if crawl.result.evidence else None
            raise dg.Failure(str(exc), allow_retries=is_transient(exc), metadata=metadata) from None
        except SQLAlchemyError as exc:
            data_url = settings.database_url or database.control_url()
            raise storage_failure(worker_id, data_url, settings.base_url, exc) from None
