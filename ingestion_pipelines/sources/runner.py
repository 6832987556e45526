"""One crawl: requests → HTTP client → `parse` → record model → upsert, rejects → `dead_letter`.

Up to `concurrency` requests are in flight (a thread pool around the shared `CrawlSession`, whose
per-host rate limit and `Retry-After` pauses hold every thread and process); follow-up requests
from `parse` join the same pool. Responses are parsed, validated and written as they arrive, in
batches of `BATCH_ROWS` rows (one transaction each, through `storage.upsert`), so memory stays flat
whatever the crawl's size. A partitioned crawl checkpoints each request once its rows have
committed (`sources.checkpoints`) and resumes from there when run again for the same range.

The reject threshold is judged on the whole run, at its end: a run over it fails; the batches
committed before the verdict stay (they hold only valid rows), the rows still buffered are not
written, every reject is in `dead_letter` tagged with the run id, and the failure says how many
rows the run committed.

Nothing here depends on Dagster: the factory calls `crawl()` inside an asset, benchmarks and
tests may call it directly.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from loguru import logger
from pydantic import ValidationError
from sqlalchemy import Engine

from ingestion_pipelines.core.redaction import redact_url
from ingestion_pipelines.http_client.results import HttpResult
from ingestion_pipelines.http_client.session import CrawlSession
from ingestion_pipelines.sources.base import Expected, Rejected, Request, Source, SourceError
from ingestion_pipelines.sources.checkpoints import (
    DEFAULT_TTL_S,
    Checkpoints,
    dump_request,
    load_request,
    request_key,
    scope_of,
)
from ingestion_pipelines.sources.crawl_result import CrawlResult, RejectThresholdError
from ingestion_pipelines.storage.dead_letters import DeadLetter, write_dead_letters
from ingestion_pipelines.storage.upsert import UpsertResult, upsert

ProgressCallback = Callable[[int, int], None]
FULL_SCOPE = "full"  # the checkpoint scope of a resumable unpartitioned crawl
BATCH_ROWS = 2000  # rows per upsert transaction while a crawl streams
NAMED_IN_LOG = 5  # how many out-of-window records the log names


def record_key(source: Source, item: Any) -> dict[str, Any]:
    """The natural key of a raw record as far as it can be read (a rejected record's key, for
    its dead letter): each key column from the field's alias in the raw item."""
    if not isinstance(item, dict):
        return {}
    columns = source.key or tuple(c.name for c in source.table.primary_key.columns)
    fields = source.record.model_fields
    key = {}
    for column in columns:
        info = fields.get(column)
        alias = info.validation_alias if info is not None else None
        name = alias if isinstance(alias, str) else column
        if name in item:
            key[column] = (
                item[name] if isinstance(item[name], str | int | None) else str(item[name])
            )
    return key


def _dump(item: Any) -> str:
    return orjson.dumps(item, default=str).decode()


def _describe_validation(error: ValidationError) -> str:
    parts = []
    for e in error.errors()[:5]:
        loc = ".".join(str(p) for p in e["loc"]) or "record"
        parts.append(f"{loc}: {e['msg']}")
    return "record failed validation: " + "; ".join(parts)


def _new_state() -> dict[str, Any]:
    """What a request yielded besides rows: kept in its checkpoint."""
    return {"followups": [], "expected": {}, "fetched": 0, "rejected": 0, "out_of_window": 0}


_END = object()


class _BatchWriter:
    """Writes a crawl's batches in one background thread, so the crawl parses and validates the
    next batch while the database works on this one (the driver releases the GIL while it
    waits). One batch is written at a time, in order, while the next one fills: memory stays
    bounded, and a batch's failure is raised to the crawl before it hands over another."""

    def __init__(self, worker_id: str):
        self.pool = ThreadPoolExecutor(1, thread_name_prefix=f"write-{worker_id}")
        self.pending: Future[UpsertResult] | None = None

    def start(self, write: Callable[[], UpsertResult]) -> None:
        """Write a batch in the background (after `drain`: one batch at a time)."""
        assert self.pending is None, "drain the writer before starting another batch"
        self.pending = self.pool.submit(write)

    def drain(self) -> list[UpsertResult]:
        """Wait for the batch being written: what it wrote (nothing if idle), or its exception."""
        pending, self.pending = self.pending, None
        return [] if pending is None else [pending.result()]

    def close(self) -> None:
        """Stop the thread (after the batch being written, if any)."""
        self.pool.shutdown(wait=True)


class _Crawl:
    """The state of one crawl; `crawl()` is its public face."""

    def __init__(
        self,
        source: Source,
        session: CrawlSession,
        data_engine: Engine,
        control_engine: Engine,
        run_id: str | None,
        progress: ProgressCallback | None,
        checkpoints: Checkpoints | None,
        batch_rows: int,
    ):
        self.source = source
        self.session = session
        self.data_engine = data_engine
        self.control_engine = control_engine
        self.run_id = run_id
        self.progress = progress
        self.checkpoints = checkpoints
        self.batch_rows = batch_rows
        self.worker_id = source.worker_id
        self.log = logger.bind(worker_id=self.worker_id)
        self.result = CrawlResult(self.worker_id, http=session.stats)
        self.base_url = source.settings.base_url
        self.key = list(source.key or (c.name for c in source.table.primary_key.columns))
        self.first_requests: Iterator[Request] = iter(source.build_requests())
        self.followups: deque[Request] = deque()
        self.committed = checkpoints.load() if checkpoints else {}
        self.total = 0
        self.rows: list[dict[str, Any]] = []
        self.letters: list[DeadLetter] = []
        self.parsed: list[tuple[str, dict[str, Any]]] = []  # their rows await the next commit
        self.writer = _BatchWriter(self.worker_id)

    # -- scheduling ----------------------------------------------------------------------
    def next_request(self) -> Request | None:
        """The next request to send: follow-ups first (they keep the queue short), then the
        source's first requests; a request a checkpoint says has committed is not sent again."""
        while True:
            if self.followups:
                request = self.followups.popleft()
            else:
                request = next(self.first_requests, None)
                if request is None:
                    return None
                self.total += 1
            if self.committed:
                state = self.committed.pop(request_key(request), None)
                if state is not None:
                    self.resume(state)
                    continue
            return request

    def resume(self, state: dict[str, Any]) -> None:
        """Account for a request committed by an earlier run of the same range."""
        result = self.result
        result.requests_resumed += 1
        result.fetched += state["fetched"]
        result.rejected += state["rejected"]
        result.out_of_window += state["out_of_window"]
        result.expected.update(state["expected"])
        for data in state["followups"]:
            self.followups.append(load_request(data))
            self.total += 1

    def fetch(self, request: Request) -> HttpResult:
        return request.send(
            self.session, self.base_url, self.source.headers, conditional=request.conditional
        )

    def run(self, concurrency: int) -> None:
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"crawl-{self.worker_id}")
        in_flight: dict[Future[HttpResult], Request] = {}
        try:
            while True:
                while len(in_flight) < concurrency:
                    request = self.next_request()
                    if request is None:
                        break
                    in_flight[pool.submit(self.fetch, request)] = request
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    request = in_flight.pop(future)
                    try:
                        response = future.result()
                    except Exception as exc:
                        self.fail_over(request, exc)  # re-raises unless another provider can
                        continue
                    self.handle(request, response)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            self.commit_after_failure()
            raise
        pool.shutdown(wait=True)

    def fail_over(self, request: Request, error: Exception) -> None:
        """A failed request of a multi-provider source is asked of its next provider
        (sources/declared_providers.py); any other failure is the run's."""
        replacing = getattr(self.source, "on_request_failed", None)
        if replacing is None:
            raise error
        again = replacing(request, error)
        self.followups.extendleft(reversed(again))
        self.total += len(again)

    # -- one response --------------------------------------------------------------------
    def handle(self, request: Request, response: HttpResult) -> None:
        self.result.requests_done += 1
        url = request.url(self.base_url)
        state = _new_state()
        if response.not_modified:
            self.log.info(
                "{} {} not modified since the last run: skipped", request.method, redact_url(url)
            )
        else:
            record_of = getattr(self.source, "record_of", None)  # one model per provider
            record = self.source.record if record_of is None else record_of(request)
            items = self.parse(request, response, url)
            while (item := next(items, _END)) is not _END:
                if isinstance(item, Request):
                    state["followups"].append(dump_request(item))
                    self.followups.append(item)
                    self.total += 1
                elif isinstance(item, Expected):
                    state["expected"][item.family] = item.total
                    self.result.expected[item.family] = item.total
                elif isinstance(item, Rejected):
                    self.result.fetched += 1
                    state["fetched"] += 1
                    self.reject(item.reason, item.raw, url, state, item.key)
                else:
                    self.take(item, url, state, record)
        if request.meta.get("checkpoint", True):  # False: asked again by every run
            self.parsed.append((request_key(request), state))
        if self.progress is not None:
            self.progress(self.result.requests_done + self.result.requests_resumed, self.total)

    def parse(self, request: Request, response: HttpResult, url: str) -> Iterator[Any]:
        """The source's `parse`, with any failure turned into a `SourceError` naming worker, URL
        and cause (the raw body goes to `dead_letter`)."""
        try:
            yield from self.source.parse(response, request)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the source's
            cause = f"{type(exc).__name__}: {exc}"
            self.letters.append(
                DeadLetter(
                    self.worker_id,
                    f"response could not be parsed: {cause}",
                    response.content,
                    {"url": redact_url(url), "status": response.status},
                )
            )
            raise SourceError(
                f"{self.worker_id}: {request.method} {redact_url(url)}: {cause}"
            ) from exc

    def take(self, item: Any, url: str, state: dict[str, Any], record=None) -> None:
        """Validate one raw record and buffer its row (committing a full batch)."""
        result = self.result
        result.fetched += 1
        state["fetched"] += 1
        try:
            row = (record or self.source.record).model_validate(item).row()
        except ValidationError as exc:
            key = record_key(self.source, item)
            self.reject(_describe_validation(exc), _dump(item), url, state, key)
            return
        if not self.in_window(row):
            result.out_of_window += 1
            state["out_of_window"] += 1
            if len(result.first_out_of_window) < NAMED_IN_LOG:
                result.first_out_of_window.append(", ".join(f"{k}={row.get(k)}" for k in self.key))
            return
        self.rows.append(row)
        if len(self.rows) >= self.batch_rows:
            self.commit()

    def reject(self, reason: str, raw: str | bytes, url: str, state: dict, key: dict) -> None:
        """Count one rejected record and keep it raw in `dead_letter` with its reason."""
        self.result.rejected += 1
        state["rejected"] += 1
        if len(self.result.first_rejects) < 5:
            self.result.first_rejects.append(reason)
        context = {"url": redact_url(url), "record_key": key}
        self.letters.append(DeadLetter(self.worker_id, reason, raw, context))

    def in_window(self, row: dict[str, Any]) -> bool:
        """Whether a row belongs to the run's partitions (by the source's `date_column`)."""
        window, column = self.source.window, self.source.date_column
        if window is None or column is None:
            return True
        value = row.get(column)
        if isinstance(value, datetime):
            value = value.astimezone(ZoneInfo(window.timezone)).date()
        return value is None or window.contains(value)

    # -- writing ---------------------------------------------------------------------------
    def commit(self) -> None:
        """Hand the buffered rows, their dead letters and the checkpoints of the requests whose
        rows they complete to the writer thread as one batch (`write_batch`), once the previous
        batch has committed (its failure is raised here, the buffered rows kept)."""
        self.drain()
        batch = (self.rows, self.letters, self.parsed)
        self.rows, self.letters, self.parsed = [], [], []
        self.writer.start(lambda: self.write_batch(*batch))

    def account(self, written: list[UpsertResult]) -> None:
        """Add what committed batches wrote to the run's counts."""
        for one in written:
            self.result.written = self.result.written + one
            if one.total:
                self.result.batches += 1

    def write_batch(
        self,
        rows: list[dict[str, Any]],
        letters: list[DeadLetter],
        parsed: list[tuple[str, dict[str, Any]]],
    ) -> UpsertResult:
        """Write rows as one transaction, then their dead letters and the checkpoints (in the
        same transaction when the data and control tables share a database)."""
        source = self.source
        written = UpsertResult()
        if self.data_engine.url == self.control_engine.url:
            with self.data_engine.begin() as conn:
                if rows:
                    written = upsert(conn, source.table, rows, **self.upsert_options())
                write_dead_letters(conn, letters, self.run_id)
                if self.checkpoints is not None:
                    self.checkpoints.save(conn, parsed)
        else:
            if rows:
                written = upsert(self.data_engine, source.table, rows, **self.upsert_options())
            with self.control_engine.begin() as conn:
                write_dead_letters(conn, letters, self.run_id)
                if self.checkpoints is not None:
                    self.checkpoints.save(conn, parsed)
        return written

    def upsert_options(self) -> dict[str, Any]:
        """The source's key and, if it keeps one, its history of replaced rows."""
        return {"key": self.source.key, "history": self.source.history(self.run_id)}

    def drain(self) -> None:
        """Wait until every batch handed to the writer has committed (raising its failure)."""
        try:
            written = self.writer.drain()
        except BaseException:
            # The first request buffered since that batch was handed over is the one being
            # handled then: some of its rows were in the failed batch, so no checkpoint for it.
            del self.parsed[:1]
            raise
        self.account(written)

    def commit_after_failure(self) -> None:
        """A failing run still commits what it has (valid rows, dead letters, checkpoints), so
        running it again resumes after them."""
        try:
            self.drain()
        except Exception as exc:  # noqa: BLE001 - the original failure is the one to report
            self.log.warning("a batch fetched before the failure did not commit: {}", exc)
        try:
            self.commit()
            self.drain()
        except Exception as exc:  # noqa: BLE001 - the original failure is the one to report
            self.log.warning("could not commit the rows fetched before the failure: {}", exc)

    def finish(self) -> None:
        """Judge the whole run against the reject threshold, commit the last batch and expire
        the range's checkpoints."""
        result = self.result
        if result.out_of_window:
            window = self.source.window
            self.log.warning(
                "{} records outside the run's window {}..{} not written; first: {}",
                result.out_of_window,
                window.start,
                window.last_day,
                "; ".join(result.first_out_of_window),
            )
        if result.rejected:
            self.log.warning(
                "{} of {} records rejected to dead_letter; first: {}",
                result.rejected,
                result.fetched,
                result.first_rejects[0] if result.first_rejects else "-",
            )
        threshold = self.source.settings.reject_threshold
        self.drain()  # the counts below are those of committed batches
        if result.fetched and result.reject_share > threshold:
            write_dead_letters(self.control_engine, self.letters, self.run_id)
            self.letters = []
            kept = result.written.inserted + result.written.updated
            raise RejectThresholdError(
                f"{self.worker_id}: {result.rejected} of {result.fetched} records rejected "
                f"({result.reject_share:.1%} > reject_threshold {threshold:.1%}) from "
                f"{redact_url(self.base_url)}; "
                + (
                    "nothing written"
                    if not kept
                    else f"{kept} rows committed in earlier batches are kept, the rest not written"
                )
                + f"; first reason: {result.first_rejects[0]}"
            )
        self.commit()
        self.drain()
        if self.checkpoints is not None:
            self.checkpoints.clear()


def crawl(
    source: Source,
    *,
    session: CrawlSession,
    data_engine: Engine,
    control_engine: Engine,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
    resume: bool = True,
    batch_rows: int = BATCH_ROWS,
) -> CrawlResult:
    """Run `source` end to end. Raises `SourceError` (naming worker, URL, cause) on bad payloads,
    `RejectThresholdError` when too many records fail validation, `HttpFetchError` (or its
    `RunDeadlineExceeded`) when a request fails for good. A partitioned crawl resumes from the
    checkpoints of an earlier run of the same range unless `resume=False`."""
    started = time.monotonic()
    settings = source.settings
    session.start_deadline(getattr(settings, "run_timeout_s", None))
    checkpoints = None
    if resume and (source.window is not None or source.resumable):
        checkpoints = Checkpoints(
            control_engine,
            source.worker_id,
            scope_of(source.window) if source.window is not None else FULL_SCOPE,
            getattr(settings, "checkpoint_ttl_s", DEFAULT_TTL_S),
        )
    failover = getattr(source, "failover", None)  # several providers: their health
    if failover is not None:
        from ingestion_pipelines.sources.declared_providers import load_health

        load_health(source, control_engine)
    job = _Crawl(
        source, session, data_engine, control_engine, run_id, progress, checkpoints, batch_rows
    )
    if job.committed:
        job.log.info(
            "resuming: {} requests of this range committed by an earlier run", len(job.committed)
        )
    try:
        job.run(getattr(settings, "concurrency", 1))
        job.finish()
        observe = getattr(source, "observe_providers", None)  # sources/declared_reconcile.py
        if observe is not None:
            observe(session, data_engine)
    finally:
        job.writer.close()
        if failover is not None:
            from ingestion_pipelines.sources.declared_providers import save_health

            save_health(source, control_engine)
            job.result.providers = failover.metadata()
    result = job.result
    result.duration_s = time.monotonic() - started
    job.log.info(
        "{}: {} fetched, {} inserted, {} updated, {} unchanged, {} rejected in {:.1f}s",
        source.worker_id,
        result.fetched,
        result.written.inserted,
        result.written.updated,
        result.written.unchanged,
        result.rejected,
        result.duration_s,
    )
    return result
