"""Definitions of every scheduled source, with cron overrides read from the config chain."""

from __future__ import annotations

import socket

import dagster as dg
from loguru import logger
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from ingestion_pipelines.config.chain import ConfigChain, ConfigError
from ingestion_pipelines.core.redaction import redact_url
from ingestion_pipelines.core.settings import get_settings
from ingestion_pipelines.sources.base import Source, source_classes
from ingestion_pipelines.sources.factory import build_source_defs
from ingestion_pipelines.storage.engines import get_engine


def _reachable(url: str, timeout_s: float = 0.5) -> bool:
    """A fast TCP check, so that loading definitions never waits on a database that is down."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return True
    port = parsed.port or {"mysql": 3306, "postgresql": 5432}.get(parsed.get_backend_name(), 0)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def crons_at_load(sources: dict[str, type[Source] | None]) -> dict[str, str]:
    """The cron of each source from the config chain; where the database cannot be read, the
    code's default applies and a warning says so."""
    url = get_settings().database_url
    chain = ConfigChain(url)
    try:
        use_db = _reachable(url) and inspect(get_engine(url)).has_table("worker_config")
    except Exception as exc:  # noqa: BLE001 - loading must not fail on a database problem
        logger.warning("config database {} unreadable at load: {}", redact_url(url), exc)
        use_db = False
    if not use_db:
        logger.warning(
            "config database {} not reachable (or not migrated) while loading definitions: "
            "schedules use the cron written in code",
            redact_url(url),
        )
    crons = {}
    for worker_id in sources:
        try:
            crons[worker_id] = chain.resolve(worker_id, use_database=use_db).settings.cron
        except ConfigError as exc:
            logger.warning("{}; the schedule uses the cron written in code", exc)
        except Exception as exc:  # noqa: BLE001
            logger.warning(
                "{}: cron not read from the config chain ({}): default applies", worker_id, exc
            )
    return crons


def defs() -> dg.Definitions:
    """The Dagster definitions of every scheduled source written in Python (the declared ones
    are built by their `RestSource` component, loaded from the defs folder)."""
    from ingestion_pipelines.sources.declared import DeclaredSource

    sources = {
        worker_id: cls
        for worker_id, cls in source_classes().items()
        if not issubclass(cls, DeclaredSource)
    }
    crons = crons_at_load(sources)
    built = [build_source_defs(cls, crons.get(worker_id)) for worker_id, cls in sources.items()]
    return dg.Definitions(
        assets=[b.asset for b in built],
        jobs=[b.job for b in built],
        schedules=[b.schedule for b in built],
    )
