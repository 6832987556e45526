"""The scheduled `retention` job: one pass per table policy (archive to Parquet, verify, delete;
see `storage/retention.py`), daily at 02:30 ICT by default.

Policies are days kept per table: the code's defaults (`retention.DEFAULT_POLICIES`), changed by
`INGEST_RETENTION_POLICIES` (`trade_tick=90,execution_log=off`) or, for one run, by the run
config `policies`. Archives go to `INGEST_ARCHIVE_URL` (or the run config `archive_url`).
Each table's pass is independent: one failing is reported and the others still run; the run
then fails naming it.
"""

import os

import dagster as dg
from pydantic import Field

from ingestion_pipelines.core.redaction import redact
from ingestion_pipelines.core.timezones import ICT_NAME
from ingestion_pipelines.dagster_api.names import KIND_TAG, MAX_RETRIES_TAG
from ingestion_pipelines.resources.database import DatabaseResource
from ingestion_pipelines.storage import retention

RETENTION_JOB = "retention"
RETENTION_SCHEDULE = "retention_schedule"
DEFAULT_CRON = "30 2 * * *"


class RetentionConfig(dg.Config):
    """One run's overrides (none: the defaults and INGEST_RETENTION_POLICIES)."""

    policies: dict[str, int] | None = Field(
        default=None, description="days kept per table, e.g. {'trade_tick': 90}; 0 skips"
    )
    archive_url: str | None = Field(
        default=None, description="archive folder or fsspec URL (default: INGEST_ARCHIVE_URL)"
    )
    pause_ratio: float | None = Field(
        default=None,
        description="after each page or delete batch wait this times its duration (0: none; "
        "default INGEST_RETENTION_PAUSE_RATIO)",
    )
    nice: int | None = Field(
        default=None,
        description="the run's process at this niceness at least (default INGEST_RETENTION_NICE)",
    )


@dg.op(name="retention_pass")
def retention_op(
    context: dg.OpExecutionContext, config: RetentionConfig, database: DatabaseResource
):
    """Archive then delete what every table's policy says is old; a table's failure fails the
    run after the other tables ran."""
    policies = retention.policies_from_env()
    if config.policies is not None:
        policies = {t: d for t, d in config.policies.items() if d}
    pause_ratio, nice = retention.throttle_defaults(config.pause_ratio, config.nice)
    retention.lower_priority(nice)
    engine = database.engine()
    failures = []
    totals = {}
    for table, days in sorted(policies.items()):
        try:
            result = retention.retention_pass(
                engine, table, days, archive_url=config.archive_url, pause_ratio=pause_ratio
            )
        except Exception as exc:  # noqa: BLE001 - reported, the other tables still run
            failures.append(f"{table}: {redact(str(exc))}")
            context.log.error(f"retention of {table} failed, nothing of it deleted: {exc}")
            continue
        totals[table] = {
            "days": len(result.days),
            "archived": result.archived,
            "deleted": result.deleted,
            "days_dropped_as_partitions": sum(d.by_partition for d in result.days),
        }
        context.log.info(
            f"retention {table} (older than {days} days, before {result.cutoff:%Y-%m-%d}): "
            f"{result.archived} rows archived, {result.deleted} deleted"
        )
    context.add_output_metadata({"tables": dg.MetadataValue.json(totals)})
    if failures:
        raise dg.Failure("retention failed for " + "; ".join(failures), allow_retries=False)


@dg.job(
    name=RETENTION_JOB,
    description="Archive old rows to Parquet (verified), then delete them: per-table policies.",
    tags={MAX_RETRIES_TAG: "0", KIND_TAG: "control"},
)
def retention_job():
    retention_op()


def defs() -> dg.Definitions:
    schedule = dg.ScheduleDefinition(
        name=RETENTION_SCHEDULE,
        job=retention_job,
        cron_schedule=os.environ.get("INGEST_RETENTION_CRON") or DEFAULT_CRON,
        execution_timezone=ICT_NAME,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return dg.Definitions(jobs=[retention_job], schedules=[schedule])
