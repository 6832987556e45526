"""What one crawl did: its counts, the source's own totals and the run's metadata
(`CrawlResult`), and the error of a run whose rejects passed the threshold."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ingestion_pipelines.http_client.results import HttpStats
from ingestion_pipelines.sources.base import SourceError
from ingestion_pipelines.storage.upsert import UpsertResult


class RejectThresholdError(SourceError):
    """Too large a share of the fetched records failed validation: the run fails."""


@dataclass
class CrawlResult:
    """The counts and totals of one crawl."""

    worker_id: str
    fetched: int = 0
    rejected: int = 0
    written: UpsertResult = field(default_factory=UpsertResult)
    http: HttpStats | None = None
    requests_done: int = 0
    requests_resumed: int = 0
    batches: int = 0
    out_of_window: int = 0
    expected: dict[str, int] = field(default_factory=dict)  # latest total per family
    duration_s: float = 0.0
    first_rejects: list[str] = field(default_factory=list)
    first_out_of_window: list[str] = field(default_factory=list)
    providers: dict[str, Any] | None = None  # a multi-provider source's (providers.Failover)

    @property
    def reject_share(self) -> float:
        """The share of fetched records that were rejected."""
        return self.rejected / self.fetched if self.fetched else 0.0

    @property
    def records_expected(self) -> int | None:
        """What the source itself said it holds (None: it said nothing)."""
        return sum(self.expected.values()) if self.expected else None

    @property
    def shortfall(self) -> int:
        """Records the source announced and the crawl did not fetch."""
        expected = self.records_expected
        return max(0, expected - self.fetched) if expected is not None else 0

    def metadata(self) -> dict[str, Any]:
        """The run's materialization metadata."""
        data: dict[str, Any] = {
            "records_fetched": self.fetched,
            "records_inserted": self.written.inserted,
            "records_updated": self.written.updated,
            "records_unchanged": self.written.unchanged,
            "records_rejected": self.rejected,
            "records_duplicate": self.written.duplicates,
            "records_out_of_window": self.out_of_window,
            "requests_resumed": self.requests_resumed,
            "batches_committed": self.batches,
            "duration_s": round(self.duration_s, 3),
        }
        if self.records_expected is not None:
            data["records_expected"] = self.records_expected
        if self.providers is not None:
            data.update(self.providers)
        if self.http is not None:
            data.update(self.http.as_metadata())  # requests, statuses, waits, latency buckets
        return data
