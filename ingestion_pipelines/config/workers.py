"""The worker catalogue: every worker id, its kind and the typed settings it reads.

Sources, feeds and derived assets register themselves by subclassing; `catalogue()` imports those
packages on first use, so nothing heavy happens at import time.
"""

from __future__ import annotations

import importlib
import math
import re
import typing
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, ClassVar, Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator

from ingestion_pipelines.core import url_policy

WorkerKind = Literal["scheduled", "feed", "derived"]

# Bounds of every setting: finite numbers within what a worker can sensibly use.
MAX_TIMEOUT_S = 3600.0
MAX_RATE_LIMIT_PER_S = 10_000.0
MAX_SILENCE_S = 86_400.0
MAX_LIST_ITEMS = 1000
MAX_TEXT_ITEM = 2048
MAX_SYMBOLS = 200  # Binance allows 1024 streams a connection; SSI boards are far smaller
Seconds = Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)]


@cache
def impersonate_profiles() -> frozenset[str]:
    """The browser profiles curl_cffi itself knows (its `BrowserTypeLiteral`)."""
    from curl_cffi.requests.impersonate import BrowserTypeLiteral

    return frozenset(typing.get_args(BrowserTypeLiteral))


def secret(default: Any = None, **kwargs: Any) -> Any:
    """A settings field whose value is never shown (URLs keep their host, lose their password)."""
    return Field(default, json_schema_extra={"secret": True}, **kwargs)


def is_valid_cron(expression: str) -> bool:
    """Whether `expression` is a cron string Dagster's schedules accept: five fields (no
    seconds), valid per croniter, and not a day that never comes (30 or 31 February)."""
    if not croniter.is_valid(expression):
        return False
    fields, *_ = croniter.expand(expression)
    if len(fields) != 5:
        return False
    return not (fields[3] == [2] and len(fields[2]) == 1 and fields[2][0] in (30, 31))


class WorkerSettings(BaseModel):
    """Keys every worker understands (see the contract)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    # The schemes `base_url` may use (feeds: ws/wss).
    base_url_schemes: ClassVar[frozenset[str]] = url_policy.CRAWL_SCHEMES

    enabled: bool = True
    base_url: str = ""
    timeout_s: Seconds = 30.0
    rate_limit_per_s: float | None = Field(None, gt=0, le=MAX_RATE_LIMIT_PER_S, allow_inf_nan=False)
    proxy: str | None = secret()
    impersonate: str = "chrome"
    database_url: str | None = secret()
    alert_webhook: str | None = secret()

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("base_url")
    @classmethod
    def _base_url_scheme(cls, value: str) -> str:
        return url_policy.check_optional_url(value, cls.base_url_schemes, "base_url") or value

    @field_validator("rest_base_url", "alert_webhook", check_fields=False)
    @classmethod
    def _http_url(cls, value: str | None, info: Any) -> str | None:
        # `slack+https://...` asks for Slack's payload format, `mailto:` for e-mail
        # (control/alerts.py, control/alert_email.py)
        if value and info.field_name == "alert_webhook" and value.lower().startswith("mailto:"):
            return value
        target = value.removeprefix("slack+") if value else value
        url_policy.check_optional_url(target, url_policy.CRAWL_SCHEMES, info.field_name)
        return value

    @field_validator("proxy")
    @classmethod
    def _proxy_scheme(cls, value: str | None) -> str | None:
        return url_policy.check_optional_url(value, url_policy.PROXY_SCHEMES, "proxy")

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str | None) -> str | None:
        return url_policy.check_optional_url(value, url_policy.DATABASE_SCHEMES, "database_url")

    @field_validator("feeds", check_fields=False)
    @classmethod
    def _feed_paths(cls, value: list[str]) -> list[str]:
        return [
            url_policy.check_path_or_url(item, url_policy.CRAWL_SCHEMES, "feed") for item in value
        ]

    @field_validator("impersonate")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if value and value not in impersonate_profiles():
            raise ValueError(
                f"not a curl_cffi browser profile: {value!r} "
                f"(e.g. chrome, firefox, safari, edge; or empty for none)"
            )
        return value

    @field_validator("*")
    @classmethod
    def _bounded_lists(cls, value: Any, info: Any) -> Any:
        if isinstance(value, list | tuple | set):
            if len(value) > MAX_LIST_ITEMS:
                raise ValueError(f"at most {MAX_LIST_ITEMS} items, got {len(value)}")
            for item in value:
                if isinstance(item, str) and not 0 < len(item.strip()) <= MAX_TEXT_ITEM:
                    raise ValueError(f"items must be non-empty text of at most {MAX_TEXT_ITEM}")
        return value

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
        0.1,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="share of rejected records that fails the run",
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
    checkpoint_ttl_s: float = Field(
        7 * 86400.0,
        le=365 * 86400,
        description="a partition range's checkpoints untouched this long expire (not < run_timeout_s)",
    )

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if not is_valid_cron(value):
            raise ValueError(f"not a valid cron expression: {value!r}")
        return value

    @field_validator("checkpoint_ttl_s")
    @classmethod
    def _checkpoints_outlive_runs(cls, value: float, info) -> float:
        # A run's range is touched when it starts; a TTL this long cannot expire it mid-run.
        run_timeout_s = info.data.get("run_timeout_s")
        if run_timeout_s is not None and value < run_timeout_s:
            raise ValueError(
                f"may not be shorter than run_timeout_s ({run_timeout_s:g}): the checkpoints "
                "of a running range would expire"
            )
        return value


class FeedSettings(WorkerSettings):
    """Settings of a websocket feed worker run by the sidecar."""

    base_url_schemes: ClassVar[frozenset[str]] = url_policy.FEED_SCHEMES
    # What one symbol looks like; a feed narrows it (quotes, spaces, separators never pass).
    symbol_pattern: ClassVar[str] = r"[A-Za-z0-9]{1,20}"

    @field_validator("symbols")
    @classmethod
    def _symbol_shape(cls, value: list[str]) -> list[str]:
        if len(value) > MAX_SYMBOLS:
            raise ValueError(f"at most {MAX_SYMBOLS} symbols, got {len(value)}")
        pattern = re.compile(cls.symbol_pattern)
        bad = [s for s in value if not pattern.fullmatch(s)]
        if bad:
            raise ValueError(f"symbols {bad[:5]!r} do not match {cls.symbol_pattern}")
        if len({s.lower() for s in value}) != len(value):
            raise ValueError("a symbol is listed twice")
        return value

    @field_validator("silence_limit_s")
    @classmethod
    def _finite_silence(cls, value: float) -> float:
        if not math.isfinite(value) or value > MAX_SILENCE_S:
            raise ValueError(f"must be a finite number of seconds up to {MAX_SILENCE_S:g}")
        return value

    symbols: list[str] = Field(default_factory=list)
    silence_limit_s: PositiveFloat = 60.0
    max_frame_bytes: PositiveInt = Field(
        1024 * 1024,
        description="a bigger websocket frame goes to dead_letter (capped) without being parsed",
    )


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
