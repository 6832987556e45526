"""docker/compose.replay.yaml is what `ingestion_pipelines.standins.compose` generates from the
catalogue: no hand-kept worker list."""

from pathlib import Path

import yaml

from ingestion_pipelines.sources.base import source_classes
from ingestion_pipelines.standins.compose import overlay

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_overlay_is_the_generated_one():
    committed = (ROOT / "docker" / "compose.replay.yaml").read_text()
    assert committed == overlay(), (
        "docker/compose.replay.yaml is stale: "
        "python -m ingestion_pipelines.standins.compose > docker/compose.replay.yaml"
    )


def test_the_overlay_points_every_scheduled_source_at_the_replay():
    env = yaml.safe_load(overlay())["x-replay-env"]
    for worker_id in source_classes():
        assert env[f"INGEST_{worker_id.upper()}__BASE_URL"].startswith("http://replay:8700")
