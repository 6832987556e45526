"""One LyngSat crawl: region pages → satellite pages → `satellite`, `satellite_transponder`,
`satellite_channel`, without Dagster (the asset in `source.py`, tests and the benchmark call
`LyngsatCrawl.run()`).

Pages are fetched over HTTP through a `ClearedFetcher` (a challenge is cleared once in the
browser or by FlareSolverr, then the session carries its cookies). Each satellite is written in
one transaction (its satellite row, transponders, channels and the dead letters of its
unreadable rows), so a run that fails keeps every satellite finished before. Counts are kept
per satellite (created / updated / unchanged / error) and progress is reported per satellite.
A page that cannot be read at all, or whose challenge cannot be cleared, leaves evidence (a
full-page screenshot and the HTML in artifact storage, linked from the run's metadata and the
dead letter); the other satellites go on, and the run fails at the end naming every such page.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from sqlalchemy import Engine

from ingestion_pipelines.browser.artifacts import ArtifactStore, SavedEvidence
from ingestion_pipelines.browser.clearance import ClearanceError, ClearedFetcher
from ingestion_pipelines.browser.html_records import decode_html
from ingestion_pipelines.browser.pool import BrowserPageError, Evidence, LazyBrowser
from ingestion_pipelines.core.redaction import redact_url
from ingestion_pipelines.http_client.errors import HttpFetchError
from ingestion_pipelines.sources.base import SourceError
from ingestion_pipelines.sources.lyngsat.pages import (
    SatellitePage,
    parse_satellite_page,
    satellite_links,
    slug_of,
)
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.dead_letters import DeadLetter, write_dead_letters
from ingestion_pipelines.storage.upsert import UpsertResult, upsert

ProgressCallback = Callable[[int, int], None]


@dataclass
class SatelliteCount:
    """What one satellite page gave: rows created / updated / unchanged, unreadable rows."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: int = 0
    transponders: int = 0
    channels: int = 0
    failed: str | None = None  # why the page could not be read at all

    def as_dict(self) -> dict[str, Any]:
        """The counts for the run's metadata."""
        data = {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": self.errors,
        }
        if self.failed:
            data["failed"] = self.failed
        return data


@dataclass
class LyngsatResult:
    """The counts of one crawl."""

    satellites: dict[str, SatelliteCount] = field(default_factory=dict)
    transponders: UpsertResult = field(default_factory=UpsertResult)
    channels: UpsertResult = field(default_factory=UpsertResult)
    evidence: list[dict[str, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_rejected: int = 0
    clearances: int = 0
    browser_navigations: int = 0
    duration_s: float = 0.0

    @property
    def reject_share(self) -> float:
        """The share of rows that could not be read."""
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0

    def metadata(self) -> dict[str, Any]:
        """The run's materialization metadata."""
        return {
            "satellites": len(self.satellites),
            "satellites_failed": len(self.failures),
            "transponders_inserted": self.transponders.inserted,
            "transponders_updated": self.transponders.updated,
            "transponders_unchanged": self.transponders.unchanged,
            "channels_inserted": self.channels.inserted,
            "channels_updated": self.channels.updated,
            "channels_unchanged": self.channels.unchanged,
            "records_fetched": self.rows_read,
            "records_rejected": self.rows_rejected,
            "per_satellite": {k: v.as_dict() for k, v in sorted(self.satellites.items())},
            "evidence": self.evidence,
            "challenge_clearances": self.clearances,
            "browser_navigations": self.browser_navigations,
            "duration_s": round(self.duration_s, 3),
        }


class LyngsatCrawl:
    """The crawl of the satellites `settings` name (`satellites`, else those `regions` list)."""

    def __init__(
        self,
        settings: Any,
        fetcher: ClearedFetcher,
        browser: LazyBrowser | None,
        artifacts: ArtifactStore,
        data_engine: Engine,
        control_engine: Engine,
        run_id: str | None = None,
        progress: ProgressCallback | None = None,
        *,
        worker_id: str,
    ):
        self.worker_id = worker_id  # its declaration's (defs/lyngsat/defs.yaml)
        self.settings = settings
        self.fetcher = fetcher
        self.browser = browser
        self.artifacts = artifacts
        self.data_engine = data_engine
        self.control_engine = control_engine
        self.run_id = run_id
        self.progress = progress
        self.base_url = settings.base_url.rstrip("/")
        self.result = LyngsatResult()
        self.log = logger.bind(worker_id=worker_id)
        self._done = 0
        self._progress_lock = threading.Lock()

    # -- discovery ------------------------------------------------------------------------
    def url_of(self, path: str) -> str:
        """A page's URL under `base_url` (a full URL is kept)."""
        return path if "://" in path else f"{self.base_url}/{path.lstrip('/')}"

    def targets(self) -> list[tuple[str, str | None]]:
        """(page URL, region) of every satellite to crawl, once each."""
        if self.settings.satellites:
            return [(self.url_of(_as_page(s)), None) for s in self.settings.satellites]
        found: dict[str, str | None] = {}
        for region in self.settings.regions:
            url = self.url_of(_as_page(region))
            page = self._get(url)
            links = satellite_links(page.content, page.url or url, page.headers.get("content-type"))
            if not links:
                raise SourceError(
                    f"{self.worker_id}: GET {redact_url(url)}: no satellite links found"
                )
            for link in links:
                found.setdefault(link, region)
        return list(found.items())

    def _get(self, url: str):
        try:
            return self.fetcher.get(url)
        except BrowserPageError as exc:
            self._keep_evidence(url, exc.evidence)
            raise ClearanceError(str(exc)) from None

    # -- the run --------------------------------------------------------------------------
    def run(self) -> LyngsatResult:
        """Crawl every target; raises `SourceError` naming the pages that failed (after the
        others were written) or when too large a share of rows was unreadable."""
        started = time.monotonic()
        targets = self.targets()
        total = len(targets)
        if self.progress is not None:
            self.progress(0, total)
        workers = max(1, min(getattr(self.settings, "concurrency", 4), total or 1))
        with ThreadPoolExecutor(workers, thread_name_prefix=self.worker_id) as pool:
            for _ in pool.map(lambda target: self._satellite(*target, total=total), targets):
                pass
        self.result.duration_s = time.monotonic() - started
        self.result.clearances = self.fetcher.clearances
        self.result.browser_navigations = self.browser.navigations if self.browser else 0
        self._judge()
        return self.result

    def _judge(self) -> None:
        result = self.result
        threshold = getattr(self.settings, "reject_threshold", 0.1)
        if result.failures:
            raise SourceError(
                f"{self.worker_id}: {len(result.failures)} of {len(result.satellites)} satellite "
                f"pages failed (the others are written): " + "; ".join(result.failures[:5])
            )
        if result.rows_read and result.reject_share > threshold:
            raise SourceError(
                f"{self.worker_id}: {result.rows_rejected} of {result.rows_read} rows unreadable "
                f"({result.reject_share:.1%} > reject_threshold {threshold:.1%}) from "
                f"{redact_url(self.base_url)}; each is in dead_letter with its HTML"
            )

    def _satellite(self, url: str, region: str | None, *, total: int) -> None:
        slug = slug_of(url)
        count = self.result.satellites.setdefault(slug, SatelliteCount())
        response = None
        try:
            response = self._get(url)
            page = parse_satellite_page(
                response.content, url, response.headers.get("content-type"), region
            )
        except (ClearanceError, HttpFetchError) as exc:
            self._fail(count, url, f"{exc}", None, None)
        except Exception as exc:  # noqa: BLE001 - an unreadable page is this page's failure
            cause = f"{type(exc).__name__}: {exc}"
            body = response.content if response is not None else None
            content_type = response.headers.get("content-type") if response is not None else None
            self._fail(count, url, cause, body, content_type)
        else:
            self._write(page, count, url, response)
        finally:
            self._tick(total)

    def _tick(self, total: int) -> None:
        with self._progress_lock:  # satellites finish on several threads
            self._done += 1
            if self.progress is not None:
                self.progress(self._done, total)

    # -- writing --------------------------------------------------------------------------
    def _write(self, page: SatellitePage, count: SatelliteCount, url: str, response) -> None:
        letters = []
        evidence = None
        if page.unreadable:  # what the page looked like, once for all its unreadable rows
            content_type = response.headers.get("content-type")
            evidence = self._evidence_of_body(url, response.content, content_type)
        for row in page.unreadable:
            letters.append(
                DeadLetter(
                    self.worker_id,
                    f"unreadable {row.kind} row: " + "; ".join(row.errors),
                    row.html,
                    {
                        "url": redact_url(url),
                        "satellite": page.satellite["satellite"],
                        **({"evidence": evidence.as_dict()} if evidence else {}),
                    },
                )
            )
        with self.data_engine.begin() as conn:
            upsert(conn, tables.satellite, [page.satellite])
            transponders = upsert(conn, tables.satellite_transponder, page.transponders)
            channels = upsert(conn, tables.satellite_channel, page.channels)
            if self.data_engine.url == self.control_engine.url:
                write_dead_letters(conn, letters, self.run_id)
        if letters and self.data_engine.url != self.control_engine.url:
            write_dead_letters(self.control_engine, letters, self.run_id)
        both = transponders + channels
        count.created, count.updated, count.unchanged = both.inserted, both.updated, both.unchanged
        count.errors = len(page.unreadable)
        count.transponders, count.channels = len(page.transponders), len(page.channels)
        self.result.transponders = self.result.transponders + transponders
        self.result.channels = self.result.channels + channels
        self.result.rows_read += len(page.transponders) + len(page.channels) + count.errors
        self.result.rows_rejected += count.errors

    def _fail(
        self, count: SatelliteCount, url: str, cause: str, body: bytes | None, content_type
    ) -> None:
        count.failed = cause[:500]
        count.errors += 1
        self.result.failures.append(f"GET {redact_url(url)}: {cause[:300]}")
        saved = None
        if body is not None:
            saved = self._evidence_of_body(url, body, content_type)
        letter = DeadLetter(
            self.worker_id,
            f"satellite page not read: {cause[:500]}",
            body if body is not None else b"",
            {"url": redact_url(url), **({"evidence": saved.as_dict()} if saved else {})},
        )
        write_dead_letters(self.control_engine, [letter], self.run_id)
        self.log.error("{}: GET {}: {}", self.worker_id, redact_url(url), cause)

    def _evidence_of_body(self, url: str, body: bytes, content_type) -> SavedEvidence:
        html = decode_html(body, content_type)
        evidence = Evidence(url, None, html)
        if self.browser is not None:
            try:
                evidence = self.browser.render_evidence(html, url)
            except Exception as exc:  # noqa: BLE001 - the HTML alone is still evidence
                self.log.warning("no screenshot of {}: {}", redact_url(url), exc)
        return self._keep_evidence(url, evidence, raw=body)

    def _keep_evidence(
        self, url: str, evidence: Evidence | None, raw: bytes | None = None
    ) -> SavedEvidence | None:
        if evidence is None:
            return None
        saved = self.artifacts.save(
            self.worker_id, self.run_id, slug_of(url), evidence.screenshot, raw or evidence.html
        )
        links = saved.as_dict()
        if links:
            self.result.evidence.append({"url": redact_url(url), **links})
        return saved


def _as_page(name: str) -> str:
    return name if name.endswith(".html") or "://" in name else f"{name}.html"
