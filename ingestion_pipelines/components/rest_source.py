"""`RestSource`: the Dagster component of a source declared in YAML.

    # ingestion_pipelines/defs/coingecko_markets/defs.yaml
    type: ingestion_pipelines.components.RestSource
    attributes: {worker_id: coingecko_markets, ...}   # sources.declared.RestSourceSpec

Its attributes are `RestSourceSpec` (what `dg check yaml` validates); `build_defs` makes the same
asset, job and schedule as every Python source (`sources.factory.build_source_defs`), from the
`Source` subclass the declaration becomes (`sources.declared.source_class`).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import BaseModel

from ingestion_pipelines.sources.business_freshness import business_freshness_defs
from ingestion_pipelines.sources.declared import RestSourceSpec, source_class
from ingestion_pipelines.sources.declared_hooks import owns_asset
from ingestion_pipelines.sources.defs import crons_at_load
from ingestion_pipelines.sources.factory import build_source_defs
from ingestion_pipelines.storage.declared import Declaration


class RestSource(dg.Component):
    """A REST JSON source: request, paginator, records, field map, table, partitions, schedule."""

    def __init__(self, spec: RestSourceSpec, folder: Path):
        self.spec = spec
        self.folder = folder

    @classmethod
    def get_model_cls(cls) -> type[BaseModel]:
        """The schema of the attributes (`dg check yaml`)."""
        return RestSourceSpec

    @classmethod
    def load(cls, attributes: BaseModel | None, context: dg.ComponentLoadContext) -> RestSource:
        """The component of one defs.yaml."""
        if not isinstance(attributes, RestSourceSpec):
            raise dg.DagsterInvalidDefinitionError(f"{context.path}: RestSource needs attributes")
        return cls(attributes, Path(context.path))

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The source's asset (with its checks), job and schedule."""
        attributes = self.spec.model_dump(mode="json", exclude_unset=True)
        source = source_class(Declaration(self.folder, attributes))
        cron = crons_at_load({source.worker_id: source}).get(source.worker_id)
        own = owns_asset(source)  # a hook owning its asset (sources/declared_hooks.py)
        built = source.asset_defs(cron) if own else build_source_defs(source, cron)
        return dg.Definitions.merge(
            dg.Definitions(assets=[built.asset], jobs=[built.job], schedules=[built.schedule]),
            business_freshness_defs(source),  # calendar-aware freshness, where declared
        )
