import pytest

from ingestion_pipelines.storage.engines import dispose_all


@pytest.fixture(autouse=True)
def _fresh_engines():
    """Each test's database is new: drop pooled connections to the previous ones."""
    yield
    dispose_all()
