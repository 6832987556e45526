"""The one place that assembles the Dagster Definitions, when Dagster asks for them.

`defs` is a `@dg.definitions` function: importing this module builds nothing, reads no
configuration and touches no database. Dagster (the workspace, `dagster definitions validate`,
the code server) calls it at load; each area then contributes its own `defs()` and the cron
overrides are read from the config chain (falling back to the code's defaults, with a warning,
when the database cannot be reached). The sidecar is never imported.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster.components.core.component_tree import ComponentTree
from dagster_shared.utils.config import discover_config_file

from ingestion_pipelines.browser.resource import BrowserResource
from ingestion_pipelines.http_client.resource import HttpClientResource
from ingestion_pipelines.resources.database import DatabaseResource
from ingestion_pipelines.resources.redis import RedisResource
from ingestion_pipelines.resources.worker_config import WorkerConfigResource


def resources() -> dict[str, dg.ConfigurableResource]:
    """The resources every area shares, keyed by the names assets and sensors ask for."""
    # INGEST_* variables are optional (the contract gives defaults), so resources read them when
    # used rather than through EnvVar, which fails a run when a variable is unset.
    return {
        "worker_config": WorkerConfigResource(),
        "database": DatabaseResource(),
        "redis": RedisResource(),
        "http": HttpClientResource(),
        "browser": BrowserResource(),
    }


def declared_defs() -> dg.Definitions:
    """The components of the defs folder (``ingestion_pipelines/defs/<worker_id>/defs.yaml``):
    through the project's ``[tool.dg]`` when this is a checkout, else (an installed package, as
    in the image) from the defs module itself."""
    package = Path(__file__).resolve().parent
    if discover_config_file(package) is not None:
        return dg.load_from_defs_folder(path_within_project=package)
    import ingestion_pipelines.defs as defs_module

    return ComponentTree.from_module(defs_module, project_root=package.parent).build_defs()


def build_definitions() -> dg.Definitions:
    """Every area's definitions merged with the shared resources (tests call it directly)."""
    from ingestion_pipelines.control import defs as control_defs
    from ingestion_pipelines.derived import defs as derived_defs
    from ingestion_pipelines.feeds import defs as feed_defs
    from ingestion_pipelines.sources import defs as source_defs

    areas = [
        source_defs.defs(),
        declared_defs(),
        feed_defs.defs(),
        derived_defs.defs(),
        control_defs.defs(),
    ]
    # A run here is one step (a worker's asset, a config change, a retention pass) or a few small
    # derived ones: Dagster's default multiprocess executor would start one more interpreter per
    # step, loading these definitions again, for little it could run in parallel. The run's own
    # process runs its steps.
    shared = dg.Definitions(resources=resources(), executor=dg.in_process_executor)
    return dg.Definitions.merge(*areas, shared)


@dg.definitions
def defs() -> dg.Definitions:
    """What Dagster loads from this module (built on its request, not at import)."""
    return build_definitions()
