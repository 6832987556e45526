"""The worker catalogue: every worker id, its kind and the typed settings it reads.

Sources, feeds and derived assets register themselves by subclassing; `catalogue()` imports those
packages on first use, so nothing heavy happens at import time.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, field_validator

WorkerKind = Literal["scheduled", "feed", "derived"]


def secret(default: Any = None, **kwargs: Any) -> Any:
    """A settings field whose value is never shown (URLs keep their host, lose their password)."""
    return Field(default, json_schema_extra={"secret": True}, **kwargs)


class WorkerSettings(BaseModel):
    """Keys every worker understands (see the contract)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    enabled: bool = True
    base_url: str = ""
    timeout_s: PositiveFloat = 30.0
    rate_limit_per_s: PositiveFloat | None = None
    proxy: str | None = secret()
    impersonate: str = "chrome"
    database_url: str | None = secret()
    alert_webhook: str | None = secret()

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @classmethod
    def secret_keys(cls) -> set[str]:
        return {
            name
            for name, info in cls.model_fields.items()
            if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("secret")
        }


class ScheduledSettings(WorkerSettings):
    """Settings of a scheduled (crawl) worker."""

    cron: str = "0 * * * *"
    reject_threshold: float = Field(
        0.1, ge=0, le=1, description="share of rejected records that fails the run"
    )
    concurrency: int = Field(
        8, ge=1, le=64, description="requests a crawl keeps in flight (within rate_limit_per_s)"
    )
    run_timeout_s: float = Field(
        6 * 3600.0,
        gt=0,
        le=7 * 86400,
        description="deadline of a whole run, retries included, besides each request's timeout_s",
    )

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from dagster._utils.schedules import is_valid_cron_string

        if not is_valid_cron_string(value):
            raise ValueError(f"not a valid cron expression: {value!r}")
        return value


class FeedSettings(WorkerSettings):
    """Settings of a websocket feed worker run by the sidecar."""

    symbols: list[str] = Field(default_factory=list)
    silence_limit_s: PositiveFloat = 60.0


@dataclass(frozen=True)
class WorkerSpec:
    worker_id: str
    kind: WorkerKind
    settings: type[WorkerSettings]
    description: str = ""


_registry: dict[str, WorkerSpec] = {}
_WORKER_PACKAGES = (
    "ingestion_pipelines.sources",
    "ingestion_pipelines.feeds",
    "ingestion_pipelines.derived",
)


def register(spec: WorkerSpec) -> WorkerSpec:
    existing = _registry.get(spec.worker_id)
    if existing is not None and existing.settings is not spec.settings:
        raise ValueError(f"worker id {spec.worker_id!r} is registered twice")
    _registry[spec.worker_id] = spec
    return spec


def catalogue() -> dict[str, WorkerSpec]:
    """Every known worker, by id (imports the source, feed and derived packages once)."""
    for package in _WORKER_PACKAGES:
        importlib.import_module(package)
    return dict(sorted(_registry.items()))


def get_worker(worker_id: str) -> WorkerSpec:
    workers = catalogue()
    try:
        return workers[worker_id]
    except KeyError:
        raise KeyError(
            f"unknown worker {worker_id!r}; known workers: {', '.join(workers)}"
        ) from None
