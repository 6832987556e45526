"""The config chain of the contract, highest layer first:

1. run config given at launch (that run only)
2. `worker_config` row for the worker
3. `worker_config` row with no worker id (global)
4. `INGEST_<WORKER_ID>__<KEY>`, then `INGEST_<KEY>`
5. the default written in code

`ConfigChain` is plain Python (the CLI and the sidecar use it directly); `WorkerConfigResource`
wraps it for Dagster assets and sensors.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import dagster as dg
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import or_, select

from ingestion_pipelines.redaction import MASK, redact, redact_url, register_secret
from ingestion_pipelines.settings import get_settings
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import worker_config
from ingestion_pipelines.workers import WorkerSettings, WorkerSpec, get_worker

S = TypeVar("S", bound=WorkerSettings)

RUN_CONFIG = "run config"
WORKER_ROW = "worker_config row"
GLOBAL_ROW = "global worker_config row"
DEFAULT = "default"
LAYER_ORDER = (RUN_CONFIG, WORKER_ROW, GLOBAL_ROW, "environment", DEFAULT)


class ConfigError(ValueError):
    """A configuration value that is not valid for its worker and key."""


@dataclass(frozen=True)
class ResolvedValue:
    key: str
    value: Any
    layer: str  # e.g. "run config", "worker_config row", "env INGEST_FMARKET_NAV__CRON", "default"
    secret: bool = False

    def display(self) -> str:
        """The value as it may be shown to a person (secrets masked)."""
        return display_value(self.value, self.secret)


@dataclass
class ResolvedConfig(Generic[S]):
    """A worker's settings with the layer each value came from."""

    worker_id: str
    settings: S
    values: dict[str, ResolvedValue] = field(default_factory=dict)

    def layer_of(self, key: str) -> str:
        return self.values[key].layer


def display_value(value: Any, is_secret: bool) -> str:
    if value is None:
        return "null"
    if is_secret:
        text = str(value)
        return redact_url(text) if "://" in text and "@" in text else MASK
    return redact(json.dumps(value, default=str, ensure_ascii=False))


def _env_name(worker_id: str | None, key: str) -> str:
    return f"INGEST_{worker_id.upper()}__{key.upper()}" if worker_id else f"INGEST_{key.upper()}"


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set):
        return True
    return any(_is_list(arg) for arg in typing.get_args(annotation) if arg is not type(None))


def _parse_env(annotation: Any, raw: str) -> Any:
    """Environment values are text: lists are JSON arrays or comma-separated; '' means null."""
    text = raw.strip()
    if text == "":
        return None
    if _is_list(annotation):
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return raw
    return raw


def _who() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return f"uid{os.getuid()}@{socket.gethostname()}"


class ConfigChain:
    """Resolve, validate and write worker settings. Reads the database on every call."""

    def __init__(self, database_url: str | None = None, environ: Mapping[str, str] | None = None):
        self.database_url = database_url or get_settings().database_url
        self.environ = os.environ if environ is None else environ

    # ---- reading -----------------------------------------------------------------------------
    def _rows(self, worker_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        engine = ensure_schema(self.database_url)
        query = select(worker_config.c.worker_id, worker_config.c.key, worker_config.c.value).where(
            or_(worker_config.c.worker_id == worker_id, worker_config.c.worker_id.is_(None))
        )
        own: dict[str, Any] = {}
        glob: dict[str, Any] = {}
        with engine.connect() as conn:
            for row in conn.execute(query):
                (own if row.worker_id == worker_id else glob)[row.key] = row.value
        return own, glob

    def _candidates(self, spec: WorkerSpec, key: str, run_config, own, glob):
        """(layer, raw value, from_env) for `key`, highest layer first; the default is last."""
        if run_config and key in run_config:
            yield RUN_CONFIG, run_config[key], False
        if key in own:
            yield WORKER_ROW, own[key], False
        if key in glob:
            yield GLOBAL_ROW, glob[key], False
        for name in (_env_name(spec.worker_id, key), _env_name(None, key)):
            if name in self.environ:
                yield f"env {name}", self.environ[name], True

    def resolve(
        self,
        worker_id: str,
        run_config: Mapping[str, Any] | None = None,
        *,
        use_database: bool = True,
    ) -> ResolvedConfig:
        """Every setting of `worker_id`, validated; a bad value raises `ConfigError`."""
        spec = get_worker(worker_id)
        model = spec.settings
        unknown = set(run_config or ()) - set(model.model_fields)
        if unknown:
            raise ConfigError(
                f"{worker_id}: unknown key(s) {sorted(unknown)} in {RUN_CONFIG}; "
                f"known keys: {', '.join(model.model_fields)}"
            )
        own, glob = self._rows(worker_id) if use_database else ({}, {})
        secrets = model.secret_keys()
        chosen: dict[str, Any] = {}
        layers: dict[str, str] = {}
        for key, info in model.model_fields.items():
            for layer, raw, from_env in self._candidates(spec, key, run_config, own, glob):
                value = _parse_env(info.annotation, raw) if from_env else raw
                try:
                    TypeAdapter(info.annotation).validate_python(value)
                except (ValidationError, ValueError) as exc:
                    raise self._error(
                        worker_id, key, layer, raw, key in secrets, info.annotation, exc
                    ) from None
                chosen[key], layers[key] = value, layer
                break
        try:
            settings = model.model_validate(chosen)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = str(first["loc"][0]) if first["loc"] else "?"
            layer = layers.get(key, DEFAULT)
            raise self._error(
                worker_id, key, layer, chosen.get(key), key in secrets, None, exc
            ) from None
        values = {}
        for key in model.model_fields:
            value = getattr(settings, key)
            if key in secrets and value:
                register_secret(str(value))
            values[key] = ResolvedValue(key, value, layers.get(key, DEFAULT), key in secrets)
        return ResolvedConfig(worker_id, settings, values)

    def get(
        self, worker_id: str, key: str, run_config: Mapping[str, Any] | None = None
    ) -> ResolvedValue:
        resolved = self.resolve(worker_id, run_config)
        if key not in resolved.values:
            raise ConfigError(
                f"{worker_id}: unknown key {key!r}; known keys: {', '.join(resolved.values)}"
            )
        return resolved.values[key]

    @staticmethod
    def _error(worker_id, key, layer, raw, is_secret, annotation, exc) -> ConfigError:
        if isinstance(exc, ValidationError):
            reason = "; ".join(e["msg"] for e in exc.errors())
        else:
            reason = str(exc)
        expected = f"expected {_describe_type(annotation)}: " if annotation is not None else ""
        return ConfigError(
            f"{worker_id}: invalid value {display_value(raw, is_secret)} for key {key!r} "
            f"from {layer}: {expected}{redact(reason)}"
        )

    # ---- writing -----------------------------------------------------------------------------
    def validate(self, worker_id: str | None, key: str, value: Any) -> Any:
        """Check `value` for `key` of `worker_id` (or of every worker having `key`, for a global)."""
        from ingestion_pipelines.workers import catalogue

        specs = [get_worker(worker_id)] if worker_id else list(catalogue().values())
        having = [s for s in specs if key in s.settings.model_fields]
        if not having:
            scope = worker_id or "any worker"
            known = sorted({k for s in specs for k in s.settings.model_fields})
            raise ConfigError(f"{scope}: unknown key {key!r}; known keys: {', '.join(known)}")
        for spec in having:
            # Validate as the whole model would, so field validators (cron syntax...) apply too.
            candidate = {key: value}
            try:
                spec.settings.model_validate(candidate)
            except ValidationError as exc:
                errors = [e for e in exc.errors() if e["loc"] and e["loc"][0] == key]
                if errors:
                    info = spec.settings.model_fields[key]
                    raise self._error(
                        spec.worker_id,
                        key,
                        "the new value",
                        value,
                        key in spec.settings.secret_keys(),
                        info.annotation,
                        ValidationError.from_exception_data(exc.title, errors),
                    ) from None
        return value

    def set(self, worker_id: str | None, key: str, value: Any, updated_by: str | None = None):
        """Write a `worker_config` row (None worker: the global row); returns (old, new)."""
        self.validate(worker_id, key, value)
        engine = ensure_schema(self.database_url)
        now = datetime.now(UTC)
        who = updated_by or _who()
        scope = _scope(worker_id)
        with engine.begin() as conn:
            row = conn.execute(
                select(worker_config.c.id, worker_config.c.value)
                .where(scope, worker_config.c.key == key)
                .with_for_update()
            ).first()
            if row is None:
                conn.execute(
                    worker_config.insert().values(
                        worker_id=worker_id, key=key, value=value, updated_at=now, updated_by=who
                    )
                )
                return None, value
            conn.execute(
                worker_config.update()
                .where(worker_config.c.id == row.id)
                .values(value=value, updated_at=now, updated_by=who)
            )
            return row.value, value

    def unset(self, worker_id: str | None, key: str) -> Any:
        """Delete a `worker_config` row; returns the value it held (None if there was none)."""
        engine = ensure_schema(self.database_url)
        scope = _scope(worker_id)
        with engine.begin() as conn:
            row = conn.execute(
                select(worker_config.c.id, worker_config.c.value).where(
                    scope, worker_config.c.key == key
                )
            ).first()
            if row is None:
                return None
            conn.execute(worker_config.delete().where(worker_config.c.id == row.id))
            return row.value

    def rows(self, worker_id: str | None = None) -> list[dict[str, Any]]:
        """The stored rows (with `updated_at`/`updated_by`), for one worker or all."""
        engine = ensure_schema(self.database_url)
        query = select(worker_config).order_by(worker_config.c.worker_id, worker_config.c.key)
        if worker_id:
            query = query.where(worker_config.c.worker_id == worker_id)
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]


def _scope(worker_id: str | None):
    """The `worker_config` rows of a worker, or the global rows for None."""
    column = worker_config.c.worker_id
    return column == worker_id if worker_id else column.is_(None)


def _describe_type(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "").replace("NoneType", "null")


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
        resolved = self.resolve(worker_id, overrides)
        if not resolved.settings.enabled:
            raise dg.Failure(
                f"{worker_id} is disabled (enabled=false from {resolved.layer_of('enabled')})",
                allow_retries=False,
            )
        return resolved
