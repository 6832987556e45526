"""The HTTP client every scheduled crawler uses, one module per job.

- `session`: `CrawlSession`, the request loop (rate limit, retries, conditional GETs, size cap,
  proxies, run deadline, statistics)
- `resource`: `HttpClientResource`, the Dagster resource handing out sessions
- `results`: `HttpResult`, `HttpStats`
- `errors`: `HttpFetchError`, `RunDeadlineExceeded`
- `validators`: `ValidatorStore`, `MemoryValidatorStore`

Backoff, `Retry-After` and which statuses are worth retrying come from `ingestion_pipelines.core.retry`.
Nothing here reads configuration at import time, and no exception, log line or statistic contains
a proxy password or other registered secret (see `ingestion_pipelines.core.redaction`).
"""
