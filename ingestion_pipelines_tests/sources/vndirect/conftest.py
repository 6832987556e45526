"""The VNDIRECT tests' replay server."""

import pytest

from ingestion_pipelines.replay.http_server import ReplayServer
from ingestion_pipelines.storage.engines import dispose_all


@pytest.fixture
def server():
    with ReplayServer() as replay:
        yield replay
    dispose_all()
