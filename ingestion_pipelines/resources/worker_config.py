"""The config chain as a Dagster resource (the chain itself, `config.ConfigChain`, is plain code
that the sidecar and the CLI use without Dagster)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from ingestion_pipelines.config.chain import ConfigChain, ResolvedConfig


class WorkerConfigResource(dg.ConfigurableResource):
    """The config chain for assets, sensors and schedules.

    `database_url` is the control database; empty means `INGEST_DATABASE_URL`, read when used.
    """

    database_url: str | None = None

    def chain(self) -> ConfigChain:
        return ConfigChain(self.database_url or None)

    def resolve(
        self, worker_id: str, run_config: Mapping[str, Any] | None = None
    ) -> ResolvedConfig:
        return self.chain().resolve(worker_id, run_config)

    def resolve_for_run(self, worker_id: str, run_config: dg.Config) -> ResolvedConfig:
        """The settings of a run: keys given in its run config override the chain; a disabled
        worker fails the run (without retries), saying which layer disabled it."""
        overrides = {k: v for k, v in run_config.model_dump().items() if v is not None}
        # Secret references arrive as {"env": NAME}: resolved by the chain, here, in the run.
        resolved = self.resolve(worker_id, overrides)
        if not resolved.settings.enabled:
            raise dg.Failure(
                f"{worker_id} is disabled (enabled=false from {resolved.layer_of('enabled')})",
                allow_retries=False,
            )
        return resolved
