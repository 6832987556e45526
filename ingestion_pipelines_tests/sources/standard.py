"""The collector of the standard tests: the worker catalogue, each worker's replay route and its
expected values (``expect`` in a YAML source's defs.yaml, ``STANDARD`` in a Python family's
``testing.py``), and what is missing."""

from __future__ import annotations

import dataclasses
import importlib

from ingestion_pipelines.replay import routes
from ingestion_pipelines.sources.declared import DeclaredSource
from ingestion_pipelines.sources.declared_testing import standard_of
from ingestion_pipelines.sources.testing import Standard


def family_of(cls: type) -> str:
    """The package of the family folder a source class lives in."""
    return cls.__module__.rsplit(".", 1)[0]


def _expected_values(cls: type) -> dict[str, Standard]:
    if issubclass(cls, DeclaredSource):
        standard = standard_of(cls)
        if standard is not None or not cls.spec.hook:
            return {cls.worker_id: _with_partition(cls, standard)} if standard else {}
        # a hook's expected values may be its family's (sources/declared_hooks.py)
    name = f"{family_of(cls)}.testing"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name not in (name, family_of(cls)):
            raise
        return {}
    return getattr(module, "STANDARD", {})


def _with_partition(cls: type[DeclaredSource], standard: Standard) -> Standard:
    """A partitioned declared source's Standard runs the partition its ``expect.partition`` names
    (the day its recording holds); `declared_testing.standard_of` does not set one yet."""
    day = (cls.spec.expect or {}).get("partition")
    if cls.partitions is None or standard.partition is not None or day is None:
        return standard
    return dataclasses.replace(standard, partition=lambda _dataset: str(day))


def collect(classes: dict[str, type]) -> tuple[dict[str, Standard], list[str]]:
    """(worker id -> its Standard, one line per worker without a replay or expected values)."""
    routes.load_replays()
    standards: dict[str, Standard] = {}
    problems: list[str] = []
    for worker_id, cls in classes.items():
        if worker_id not in routes.WORKER_BASE_PATHS:
            problems.append(
                f"{worker_id}: no replay route (its family's replay.py registers none: "
                f"base_path({worker_id!r}) and its routes)"
            )
        standard = _expected_values(cls).get(worker_id)
        if standard is None and issubclass(cls, DeclaredSource) and not cls.spec.hook:
            problems.append(
                f"{worker_id}: no expected values (`expect` with `bad_record` and a `replay` in "
                f"{cls.folder}/defs.yaml)"
            )
        elif standard is None:
            problems.append(
                f"{worker_id}: no expected values (STANDARD[{worker_id!r}] in "
                f"{family_of(cls)}.testing)"
            )
        else:
            standards[worker_id] = standard
    return standards, problems
