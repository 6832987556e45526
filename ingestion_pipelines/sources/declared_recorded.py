"""The recording a declared source's replay serves, found by the real path it answers at: for a
family's simulator that serves more than the declared source (fmarket's NAV history model reads
its funds from the fund list the YAML fund source replays), without naming that source's worker."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from ingestion_pipelines.replay import routes
from ingestion_pipelines.sources.declared import load_declared_sources

if TYPE_CHECKING:
    from ingestion_pipelines.replay.dataset import ReplayDataset
    from ingestion_pipelines.sources.declared_replay import RecordedPayload


@cache
def replaying(path: str) -> str:
    """The worker id of the declared source whose replay answers at `path` (its real path; a
    copied folder replaying the same path is served under its worker id, so it is not this one)."""
    routes.load_replays()
    found = [
        worker_id
        for worker_id, source in load_declared_sources().items()
        if source.spec.replay
        and source.spec.replayed_path() == path
        and routes.WORKER_BASE_PATHS.get(worker_id) == source.spec.replay.get("base_path", "")
    ]
    if len(found) != 1:
        raise LookupError(f"{len(found)} declared sources replay {path}: {found}")
    return found[0]


def recorded_at(dataset: ReplayDataset, path: str) -> RecordedPayload:
    """What `dataset` serves at `path` for the declared source replaying it (tests change its
    `records`, `page_cap`, `over_return` there)."""
    return dataset.recorded[replaying(path)]
