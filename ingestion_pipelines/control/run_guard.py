"""The server-side guard of a webserver's Dagster instance: what a request may store as a run.

Every run and every backfill passes through the run storage (`add_run`, `add_backfill`) before it
exists, whatever the GraphQL operation, its spelling (inline tags, variables, escapes, fragments)
or its path (launch, re-execution, backfill, retry of a backfill). The guard wraps those two
methods of the webserver's own instance:

- operator role: the run tag `ingest/identity` is removed from what the caller sent and set to
  the identity of the request being served (the authenticating proxy's `X-Forwarded-User`, held
  in a context variable by `operator_webserver`); outside a request, or without the header, the
  run has no identity at all. The run config is checked too: a secret given literally (or a URL
  with a password) is refused before anything is stored.
- internal role (the endpoint sidecars and run containers use): no run and no backfill at all.

Runs the daemon creates (schedules, sensors, retries, a backfill's runs) are not created in the
webserver and keep the tags they derive from: the stamped backfill, the stamped parent run, or
the code. So `ingest/identity` on a run is only ever a value this guard wrote.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import yaml

from ingestion_pipelines.config.chain import ConfigError, env_reference, url_with_password
from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.dagster_api.names import IDENTITY_TAG

CONFIG_OP = "apply_config_change"
OPERATOR, INTERNAL = "operator", "internal"

_identity: ContextVar[str | None] = ContextVar("ingest_request_identity", default=None)


class LaunchRefused(IngestError, ValueError):
    """A run or backfill this webserver will not store (the message says why)."""


@contextmanager
def request_identity(identity: str | None) -> Iterator[None]:
    """The identity of the request being served, for the runs it creates."""
    token = _identity.set(identity)
    try:
        yield
    finally:
        _identity.reset(token)


def stamped(tags: Mapping[str, Any] | None) -> dict[str, Any]:
    """`tags` with `ingest/identity` set to the current request's identity (or removed)."""
    kept = {key: value for key, value in (tags or {}).items() if key != IDENTITY_TAG}
    identity = _identity.get()
    if identity:
        kept[IDENTITY_TAG] = identity
    return kept


def guard_instance(instance: Any, role: str = OPERATOR) -> None:
    """Wrap the run storage of `instance` (a `DagsterInstance`) as the module docstring says."""
    storage = instance.run_storage
    add_run, add_backfill = storage.add_run, storage.add_backfill

    def guarded_add_run(dagster_run):
        if role == INTERNAL:
            raise LaunchRefused("this endpoint launches nothing: use the operator webserver")
        check_run_config(dagster_run.run_config)
        return add_run(dagster_run.with_tags(stamped(dagster_run.tags)))

    def guarded_add_backfill(backfill):
        if role == INTERNAL:
            raise LaunchRefused("this endpoint launches nothing: use the operator webserver")
        return add_backfill(backfill._replace(tags=stamped(backfill.tags)))

    storage.add_run = guarded_add_run
    storage.add_backfill = guarded_add_backfill


def check_run_config(run_config: Any) -> None:
    """Raise `LaunchRefused` when a run config would store a secret in the instance: a secret
    key given literally (to a worker's op or to `config_change`), or a URL with a password."""
    if isinstance(run_config, str):
        run_config = yaml.safe_load(run_config)
    if not isinstance(run_config, dict):
        return
    try:
        _check_ops(run_config.get("ops"))
    except ConfigError as exc:
        raise LaunchRefused(str(exc)) from None
    if _holds_url_password(run_config):
        raise LaunchRefused(
            "the run config holds a URL with a password: URL passwords are secrets, set them "
            "in the environment of the workers"
        )


def _check_ops(ops: Any) -> None:
    for op_name, op in ops.items() if isinstance(ops, dict) else ():
        config = op.get("config") if isinstance(op, dict) else None
        if not isinstance(config, dict):
            continue
        if op_name == CONFIG_OP:
            _check_config_change(config)
        else:
            for key in _secret_keys() & set(config):
                if config[key] is not None and env_reference(config[key]) is None:
                    raise LaunchRefused(_literal_secret(key))


def _secret_keys() -> set[str]:
    from ingestion_pipelines.config.workers import catalogue

    return {key for spec in catalogue().values() for key in spec.settings.secret_keys()}


def _literal_secret(key: str) -> str:
    return (
        f'{key} must be given as {{"env": "NAME"}} (a variable set where the workers run): '
        "a literal secret would be stored in the run's config"
    )


def _check_config_change(change: dict[str, Any]) -> None:
    if change.get("unset") or change.get("value") is None:
        return
    from ingestion_pipelines.control.defs import GLOBAL, secret_key

    worker = change.get("worker_id")
    worker = None if worker in (None, "", GLOBAL) else worker
    try:
        value = json.loads(change["value"])
    except (TypeError, ValueError):
        value = change["value"]
    try:
        is_secret = secret_key(worker, str(change.get("key")))
    except KeyError:
        return  # an unknown worker: the job itself says so
    if is_secret and env_reference(value) is None:
        raise LaunchRefused(_literal_secret(str(change.get("key"))))


def _holds_url_password(node: Any) -> bool:
    if isinstance(node, dict):
        return any(_holds_url_password(v) for v in node.values())
    if isinstance(node, list):
        return any(_holds_url_password(v) for v in node)
    if isinstance(node, str):
        if url_with_password(node):
            return True
        try:  # config_change carries its value as JSON text
            return "://" in node and _holds_url_password(json.loads(node))
        except ValueError:
            return False
    return False
