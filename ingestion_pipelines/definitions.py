"""The one place that assembles the Dagster Definitions.

Each area contributes its own `defs()`; resources are shared here. Nothing reads configuration
or touches a database at import, except the cron overrides, which fall back to the code's
defaults (with a warning) when the database cannot be reached. The sidecar is never imported.
"""

from __future__ import annotations

import dagster as dg

from ingestion_pipelines.config import WorkerConfigResource
from ingestion_pipelines.http_client.resource import HttpClientResource
from ingestion_pipelines.resources.database import DatabaseResource
from ingestion_pipelines.resources.redis import RedisResource


def resources() -> dict[str, dg.ConfigurableResource]:
    # INGEST_* variables are optional (the contract gives defaults), so resources read them when
    # used rather than through EnvVar, which fails a run when a variable is unset.
    return {
        "worker_config": WorkerConfigResource(),
        "database": DatabaseResource(),
        "redis": RedisResource(),
        "http": HttpClientResource(),
    }


def build_definitions() -> dg.Definitions:
    from ingestion_pipelines.control import defs as control_defs
    from ingestion_pipelines.derived import defs as derived_defs
    from ingestion_pipelines.feeds import defs as feed_defs
    from ingestion_pipelines.sources import defs as source_defs

    areas = [source_defs.defs(), feed_defs.defs(), derived_defs.defs(), control_defs.defs()]
    return dg.Definitions.merge(*areas, dg.Definitions(resources=resources()))


defs = build_definitions()
