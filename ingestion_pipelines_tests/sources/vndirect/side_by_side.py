"""Two versions of a worker (Python, and declared in YAML) crawled side by side into their own
databases, outside Dagster, as `crawl()` runs them in a Dagster run."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from ingestion_pipelines.http_client.resource import HttpClientResource
from ingestion_pipelines.sources.base import Window
from ingestion_pipelines.sources.runner import crawl
from ingestion_pipelines.storage.engines import ensure_schema


def run(source_class, url: str, base_url: str, first: date | None, last: date | None, **more):
    """One crawl of `source_class` over first..last (None: unpartitioned) into `url`."""
    engine = ensure_schema(url)
    settings = source_class.Settings(base_url=base_url, database_url=url, concurrency=4, **more)
    window = None
    if first is not None:
        window = Window(first, last + timedelta(days=1), source_class.partitions.timezone)
    with HttpClientResource(redis_url="").session(
        source_class.worker_id, impersonate=None
    ) as session:
        return crawl(
            source_class(settings, window), session=session, data_engine=engine,
            control_engine=engine,
        )  # fmt: skip


def rows(url: str, table) -> list[dict]:
    with ensure_schema(url).connect() as conn:
        query = select(table).order_by(*table.primary_key)
        return [dict(r) for r in conn.execute(query).mappings()]
