"""One error hierarchy: every error the platform raises on purpose is an `IngestError` saying
whether it is transient, and keeps the builtin base its callers catch."""

from __future__ import annotations

import pytest

from ingestion_pipelines.config.chain import ConfigError
from ingestion_pipelines.control.operator_webserver import LaunchRefused
from ingestion_pipelines.core.errors import IngestError, is_transient
from ingestion_pipelines.core.url_policy import UnsafeUrlError
from ingestion_pipelines.dagster_api.client import ControlError
from ingestion_pipelines.dagster_api.feed_switches import FeedControlError
from ingestion_pipelines.dagster_api.http import DagsterHttpError
from ingestion_pipelines.feeds.protocol import ParseError
from ingestion_pipelines.live.hub import PatternError
from ingestion_pipelines.sidecar.committer import Fenced
from ingestion_pipelines.sidecar.spool import SpoolFull
from ingestion_pipelines.sources.base import SourceError
from ingestion_pipelines.sources.crawl_result import RejectThresholdError
from ingestion_pipelines.sources.failures import StorageError

# (class, the builtin base callers catch, transient by default)
ERRORS = [
    (ConfigError, ValueError, False),
    (LaunchRefused, ValueError, False),
    (ControlError, RuntimeError, False),
    (FeedControlError, RuntimeError, False),
    (StorageError, RuntimeError, True),
    (ParseError, ValueError, False),
    (PatternError, ValueError, False),
    (SpoolFull, RuntimeError, True),
    (SourceError, RuntimeError, False),
    (RejectThresholdError, RuntimeError, False),
    (UnsafeUrlError, ValueError, False),
]


@pytest.mark.parametrize(("error", "builtin", "transient"), ERRORS, ids=lambda v: str(v))
def test_each_error_stands_on_ingest_error(error, builtin, transient) -> None:
    assert issubclass(error, IngestError) and issubclass(error, builtin)
    assert error.transient is transient


def test_an_error_can_say_otherwise_for_one_failure() -> None:
    assert is_transient(DagsterHttpError("HTTP 503", status=503, transient=True))
    assert not is_transient(DagsterHttpError("HTTP 404", status=404, transient=False))
    assert is_transient(SourceError("mirror lagging", transient=True))
    assert not is_transient(Fenced("binance_trades", 1, 2))
