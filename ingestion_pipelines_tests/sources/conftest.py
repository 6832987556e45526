"""Fixtures for crawling the replay server through Dagster's `materialize`."""

from dataclasses import dataclass

import dagster as dg
import pytest
from sqlalchemy import select

from ingestion_pipelines.replay.http_server import ReplayServer
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema


@dataclass
class Crawl:
    result: dg.ExecuteInProcessResult
    metadata: dict

    @property
    def counts(self) -> tuple[int, int, int, int, int]:
        m = self.metadata
        return (
            m["records_fetched"],
            m["records_inserted"],
            m["records_updated"],
            m["records_unchanged"],
            m["records_rejected"],
        )


class Crawler:
    """Materializes one worker's asset against the replay server, on `database_url`."""

    def __init__(self, server: ReplayServer, database_url: str):
        from ingestion_pipelines.definitions import build_definitions

        self.server = server
        self.database_url = database_url
        self.defs = build_definitions()
        self.instance = dg.DagsterInstance.ephemeral()

    def asset(self, worker_id: str) -> dg.AssetsDefinition:
        return next(a for a in self.defs.assets if a.key.to_user_string() == worker_id)

    def run(
        self,
        worker_id,
        partition=None,
        *,
        partition_range=None,
        run_config=None,
        expect_success=True,
    ):
        tags = {}
        if partition_range:
            tags = {
                "dagster/asset_partition_range_start": partition_range[0],
                "dagster/asset_partition_range_end": partition_range[1],
            }
        config = {"ops": {worker_id: {"config": run_config}}} if run_config else None
        result = dg.materialize(
            [self.asset(worker_id)],
            resources=self.defs.resources,
            instance=self.instance,
            partition_key=partition,
            tags=tags,
            run_config=config,
            raise_on_error=False,
        )
        if expect_success:
            failures = [e.message for e in result.all_events if e.is_failure]
            assert result.success, failures
            # A partition range materializes every partition of it, with the run's metadata.
            events = result.asset_materializations_for_node(worker_id)
            metadata = {k: v.value for k, v in events[0].metadata.items()}
            return Crawl(result, metadata)
        assert not result.success
        return Crawl(result, {})

    def rows(self, table, order_by=None):
        query = select(table)
        if order_by is not None:
            query = query.order_by(*order_by)
        with ensure_schema(self.database_url).connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]


@pytest.fixture
def replay():
    with ReplayServer() as server:
        yield server


@pytest.fixture
def crawler(replay, sqlite_url, monkeypatch):
    monkeypatch.setenv("INGEST_DATABASE_URL", sqlite_url)
    for name, value in replay.env().items():
        monkeypatch.setenv(name, value)
    yield Crawler(replay, sqlite_url)
    dispose_all()


def failure_message(crawl: Crawl) -> str:
    return "\n".join(
        str(e.event_specific_data.error.message)
        for e in crawl.result.all_events
        if e.is_step_failure and e.event_specific_data and e.event_specific_data.error
    )
