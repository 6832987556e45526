"""The config chain of the contract, highest layer first:

1. run config given at launch (that run only)
2. `worker_config` row for the worker
3. `worker_config` row with no worker id (global)
4. `INGEST_<WORKER_ID>__<KEY>`, then `INGEST_<KEY>`
5. the default written in code

`ConfigChain` is plain Python (the CLI and the sidecar use it directly; nothing here imports
Dagster); `resources.worker_config.WorkerConfigResource` wraps it for assets and sensors.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from loguru import logger
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Text, or_, select, type_coerce

from ingestion_pipelines.config.workers import WorkerSettings, WorkerSpec, get_worker
from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.core.redaction import MASK, redact, redact_url, register_secret
from ingestion_pipelines.core.settings import get_settings
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import worker_config

S = TypeVar("S", bound=WorkerSettings)

RUN_CONFIG = "run config"
WORKER_ROW = "worker_config row"
GLOBAL_ROW = "global worker_config row"
DEFAULT = "default"
LAYER_ORDER = (RUN_CONFIG, WORKER_ROW, GLOBAL_ROW, "environment", DEFAULT)


class ConfigError(IngestError, ValueError):
    """A configuration value that is not valid for its worker and key."""


# ---- secrets: given as a reference to an environment variable, resolved only where used --------

ENV_REFERENCE = "env"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
SECRET_HINT = (
    'give it as a reference to an environment variable set where the workers run: {"env": "NAME"} '
    "(on the command line: env:NAME); a literal secret would be stored in the run's config"
)


def env_reference(value: Any) -> str | None:
    """The variable named by a secret reference `{"env": "NAME"}`, else None."""
    if isinstance(value, Mapping) and set(value) == {ENV_REFERENCE}:
        name = value[ENV_REFERENCE]
        if isinstance(name, str) and _ENV_NAME.fullmatch(name):
            return name
    return None


def url_with_password(value: Any) -> bool:
    """Whether `value` (text, or a list of texts) holds a URL with a password in it."""
    items = value if isinstance(value, list | tuple) else [value]
    for item in items:
        if isinstance(item, str) and "@" in item and "://" in item:
            try:
                if urlsplit(item.strip()).password:
                    return True
            except ValueError:
                continue
    return False


@dataclass(frozen=True)
class CorruptRow:
    """A `worker_config` row whose value is not JSON: skipped, its layer falls through."""

    worker_id: str | None
    key: str
    layer: str
    cause: str

    def describe(self) -> str:
        return (
            f"corrupt {self.layer} {self.worker_id or 'global'}.{self.key} skipped "
            f"({self.cause}); repair it with `ingest config set` or remove it with "
            f"`ingest config unset {self.worker_id or 'global'} {self.key}`"
        )


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
    corrupt: list[CorruptRow] = field(default_factory=list)

    def layer_of(self, key: str) -> str:
        return self.values[key].layer


def display_value(value: Any, is_secret: bool) -> str:
    if value is None:
        return "null"
    name = env_reference(value)
    if name is not None:
        return f"env:{name}"  # a reference names a variable, not the secret
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

    def __init__(
        self,
        database_url: str | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        dereference: bool = True,
    ):
        """`dereference=False` (the CLI's `config get|list`): secret references are shown as
        `env:NAME` rather than read, since the variable lives where the workers run."""
        self.database_url = database_url or get_settings().database_url
        self.environ = os.environ if environ is None else environ
        self.dereference = dereference

    # ---- reading -----------------------------------------------------------------------------
    def _rows(
        self, worker_id: str, corrupt: list[CorruptRow] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The worker's and the global rows; a row that is not JSON is reported in `corrupt`
        and skipped, so its layer falls through instead of failing every worker."""
        engine = ensure_schema(self.database_url)
        query = select(
            worker_config.c.worker_id, worker_config.c.key, _raw_value().label("raw")
        ).where(or_(worker_config.c.worker_id == worker_id, worker_config.c.worker_id.is_(None)))
        own: dict[str, Any] = {}
        glob: dict[str, Any] = {}
        with engine.connect() as conn:
            for row in conn.execute(query):
                layer = WORKER_ROW if row.worker_id == worker_id else GLOBAL_ROW
                try:
                    value = json.loads(row.raw)
                except (TypeError, ValueError) as exc:
                    bad = CorruptRow(row.worker_id, row.key, layer, f"not JSON: {exc}")
                    logger.bind(worker_id=worker_id).warning("config: {}", bad.describe())
                    if corrupt is not None:
                        corrupt.append(bad)
                    continue
                (own if row.worker_id == worker_id else glob)[row.key] = value
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
        corrupt: list[CorruptRow] = []
        own, glob = self._rows(worker_id, corrupt) if use_database else ({}, {})
        secrets = model.secret_keys()
        chosen: dict[str, Any] = {}
        layers: dict[str, str] = {}
        references: dict[str, Any] = {}
        for key, info in model.model_fields.items():
            for layer, raw, from_env in self._candidates(spec, key, run_config, own, glob):
                value = _parse_env(info.annotation, raw) if from_env else raw
                if not self.dereference and key in secrets and env_reference(value):
                    references[key], layers[key] = value, layer
                    break
                value, layer = self._dereference(worker_id, key, layer, value, key in secrets)
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
            value = references.get(key) or getattr(settings, key)
            if key in secrets and value and key not in references:
                register_secret(str(value))
            values[key] = ResolvedValue(key, value, layers.get(key, DEFAULT), key in secrets)
        return ResolvedConfig(worker_id, settings, values, corrupt)

    def _dereference(
        self, worker_id: str, key: str, layer: str, value: Any, is_secret: bool
    ) -> tuple[Any, str]:
        """A secret's value from the variable its reference names (read here, where it is
        used); a literal secret or a URL password in run config is refused."""
        name = env_reference(value) if is_secret else None
        if name is not None:
            if name not in self.environ:
                raise ConfigError(
                    f"{worker_id}: key {key!r} from {layer} refers to the environment variable "
                    f"{name}, which is not set in this process"
                )
            return self.environ[name], f"{layer} (env {name})"
        if layer == RUN_CONFIG and value is not None:
            if is_secret:
                raise ConfigError(f"{worker_id}: key {key!r} is a secret: {SECRET_HINT}")
            if url_with_password(value):
                raise ConfigError(
                    f"{worker_id}: key {key!r} in {RUN_CONFIG} holds a URL with a password: "
                    "URL passwords are secrets, set them in the environment of the workers"
                )
        return value, layer

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
        shown = display_value(raw, is_secret)
        if len(shown) > 200:
            shown = f"{shown[:200]}... ({len(shown)} characters)"
        return ConfigError(
            f"{worker_id}: invalid value {shown} for key {key!r} "
            f"from {layer}: {expected}{redact(reason)}"
        )

    # ---- writing -----------------------------------------------------------------------------
    def validate(self, worker_id: str | None, key: str, value: Any) -> Any:
        """Check a value that travels through a run's config (`config set`, the config job):
        a secret must be a reference to an environment variable, never a literal, and no URL
        may carry a password; then `check_value`."""
        having = self._having(worker_id, key)
        scope = worker_id or "global"
        if value is not None and any(key in s.settings.secret_keys() for s in having):
            if env_reference(value) is None:
                raise ConfigError(f"{scope}: key {key!r} is a secret: {SECRET_HINT}")
        elif url_with_password(value):
            raise ConfigError(
                f"{scope}: the value of {key!r} holds a URL with a password: URL passwords are "
                "secrets, set them in the environment of the workers"
            )
        return self.check_value(worker_id, key, value)

    @staticmethod
    def _having(worker_id: str | None, key: str) -> list[WorkerSpec]:
        from ingestion_pipelines.config.workers import catalogue

        specs = [get_worker(worker_id)] if worker_id else list(catalogue().values())
        having = [s for s in specs if key in s.settings.model_fields]
        if not having:
            scope = worker_id or "any worker"
            known = sorted({k for s in specs for k in s.settings.model_fields})
            raise ConfigError(f"{scope}: unknown key {key!r}; known keys: {', '.join(known)}")
        return having

    def check_value(self, worker_id: str | None, key: str, value: Any) -> Any:
        """Check `value` for `key` of `worker_id` (or of every worker having `key`, for a global).
        A secret reference is checked where it is resolved, in the workers' environment."""
        having = self._having(worker_id, key)
        is_secret = any(key in s.settings.secret_keys() for s in having)
        if is_secret and env_reference(value) is not None:
            return value
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
        self.check_value(worker_id, key, value)
        engine = ensure_schema(self.database_url)
        now = datetime.now(UTC)
        who = updated_by or _who()
        scope = _scope(worker_id)
        with engine.begin() as conn:
            row = conn.execute(
                select(worker_config.c.id, _raw_value().label("raw"))
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
            return _decoded_or_raw(row.raw), value

    def unset(self, worker_id: str | None, key: str) -> Any:
        """Delete a `worker_config` row; returns the value it held (None if there was none)."""
        engine = ensure_schema(self.database_url)
        scope = _scope(worker_id)
        with engine.begin() as conn:
            row = conn.execute(
                select(worker_config.c.id, _raw_value().label("raw")).where(
                    scope, worker_config.c.key == key
                )
            ).first()
            if row is None:
                return None
            conn.execute(worker_config.delete().where(worker_config.c.id == row.id))
            return _decoded_or_raw(row.raw)

    def rows(self, worker_id: str | None = None) -> list[dict[str, Any]]:
        """The stored rows (with `updated_at`/`updated_by`), for one worker or all."""
        engine = ensure_schema(self.database_url)
        query = select(worker_config).order_by(worker_config.c.worker_id, worker_config.c.key)
        if worker_id:
            query = query.where(worker_config.c.worker_id == worker_id)
        query = query.with_only_columns(
            *(c for c in worker_config.c if c.name != "value"), _raw_value().label("value")
        )
        with engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        for row in rows:
            row["value"] = _decoded_or_raw(row["value"])
        return rows


def _raw_value():
    """`worker_config.value` as stored text, decoded by the caller (a corrupt row stays readable)."""
    return type_coerce(worker_config.c.value, Text)


def _decoded_or_raw(raw: str | None) -> Any:
    """A stored value decoded from JSON; a corrupt one as its raw text."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _scope(worker_id: str | None):
    """The `worker_config` rows of a worker, or the global rows for None."""
    column = worker_config.c.worker_id
    return column == worker_id if worker_id else column.is_(None)


def _describe_type(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "").replace("NoneType", "null")
