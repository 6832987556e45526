"""One crawl: requests → HTTP client → `parse` → record model → upsert, rejects → `dead_letter`.

Nothing here depends on Dagster: the factory calls `crawl()` inside an asset, benchmarks and
tests may call it directly.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from loguru import logger
from pydantic import ValidationError
from sqlalchemy import Engine

from ingestion_pipelines.redaction import redact_url
from ingestion_pipelines.resources.http import CrawlSession, HttpResult, HttpStats
from ingestion_pipelines.sources.base import Expected, Request, Source, SourceError
from ingestion_pipelines.storage.dead_letters import DeadLetter, write_dead_letters
from ingestion_pipelines.storage.upsert import UpsertResult, upsert

ProgressCallback = Callable[[int, int], None]


class RejectThresholdError(SourceError):
    """Too large a share of the fetched records failed validation: nothing was written."""


@dataclass
class CrawlResult:
    worker_id: str
    fetched: int = 0
    rejected: int = 0
    written: UpsertResult = field(default_factory=UpsertResult)
    http: HttpStats | None = None
    requests_done: int = 0
    duration_s: float = 0.0
    first_rejects: list[str] = field(default_factory=list)

    @property
    def reject_share(self) -> float:
        return self.rejected / self.fetched if self.fetched else 0.0

    def metadata(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "records_fetched": self.fetched,
            "records_inserted": self.written.inserted,
            "records_updated": self.written.updated,
            "records_unchanged": self.written.unchanged,
            "records_rejected": self.rejected,
            "records_duplicate": self.written.duplicates,
            "duration_s": round(self.duration_s, 3),
        }
        if self.http is not None:
            data["http_requests_by_status"] = dict(self.http.requests_by_status)
            data["http_requests"] = self.http.requests
            data["http_retries"] = self.http.retries
            data["http_bytes"] = self.http.bytes
            data["http_not_modified"] = self.http.not_modified
        return data


def _dump(item: Any) -> str:
    return orjson.dumps(item, default=str).decode()


def _describe_validation(error: ValidationError) -> str:
    parts = []
    for e in error.errors()[:5]:
        loc = ".".join(str(p) for p in e["loc"]) or "record"
        parts.append(f"{loc}: {e['msg']}")
    return "record failed validation: " + "; ".join(parts)


def crawl(
    source: Source,
    *,
    session: CrawlSession,
    data_engine: Engine,
    control_engine: Engine,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
) -> CrawlResult:
    """Run `source` end to end. Raises `SourceError` (naming worker, URL, cause) on bad payloads
    and `RejectThresholdError` when too many records fail validation; the data table is then
    untouched, and the rejects are in `dead_letter` all the same."""
    worker_id = source.worker_id
    log = logger.bind(worker_id=worker_id)
    started = time.monotonic()
    result = CrawlResult(worker_id, http=session.stats)
    queue: deque[Request] = deque(source.build_requests())
    total = len(queue)
    rows: list[dict[str, Any]] = []
    letters: list[DeadLetter] = []
    base_url = source.settings.base_url

    while queue:
        request = queue.popleft()
        url = request.url(base_url)
        response: HttpResult = session.request(
            request.method,
            url,
            params=request.params,
            json=request.json,
            headers={**source.headers, **(request.headers or {})},
            conditional=request.conditional,
        )
        result.requests_done += 1
        if response.not_modified:
            log.info(
                "{} {} not modified since the last run: skipped", request.method, redact_url(url)
            )
        else:
            try:
                items = list(source.parse(response, request))
            except Exception as exc:  # noqa: BLE001 - any parse failure is the source's
                cause = f"{type(exc).__name__}: {exc}"
                letters.append(
                    DeadLetter(
                        worker_id,
                        f"response could not be parsed: {cause}",
                        response.content,
                        {"url": redact_url(url), "status": response.status},
                    )
                )
                write_dead_letters(control_engine, letters, run_id)
                raise SourceError(
                    f"{worker_id}: {request.method} {redact_url(url)}: {cause}"
                ) from exc
            for item in items:
                if isinstance(item, Expected):
                    continue
                if isinstance(item, Request):
                    queue.append(item)
                    total += 1
                    continue
                result.fetched += 1
                try:
                    rows.append(source.record.model_validate(item).row())
                except ValidationError as exc:
                    reason = _describe_validation(exc)
                    result.rejected += 1
                    if len(result.first_rejects) < 5:
                        result.first_rejects.append(reason)
                    letters.append(
                        DeadLetter(worker_id, reason, _dump(item), {"url": redact_url(url)})
                    )
        if progress is not None:
            progress(result.requests_done, total)

    if letters:
        write_dead_letters(control_engine, letters, run_id)
        log.warning(
            "{} of {} records rejected to dead_letter; first: {}",
            result.rejected,
            result.fetched,
            result.first_rejects[0] if result.first_rejects else "-",
        )
    threshold = source.settings.reject_threshold
    if result.fetched and result.reject_share > threshold:
        raise RejectThresholdError(
            f"{worker_id}: {result.rejected} of {result.fetched} records rejected "
            f"({result.reject_share:.1%} > reject_threshold {threshold:.1%}) from "
            f"{redact_url(base_url)}; nothing written; first reason: {result.first_rejects[0]}"
        )
    result.written = upsert(data_engine, source.table, rows, key=source.key)
    result.duration_s = time.monotonic() - started
    log.info(
        "{}: {} fetched, {} inserted, {} updated, {} unchanged, {} rejected in {:.1f}s",
        worker_id,
        result.fetched,
        result.written.inserted,
        result.written.updated,
        result.written.unchanged,
        result.rejected,
        result.duration_s,
    )
    return result
