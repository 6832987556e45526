"""``fetch: browser``: a declared source whose pages build their rows with JavaScript is fetched
by rendering each page in the run's browser (`browser.pool`, Debian's Chromium) instead of over
HTTP; the rendered document then goes through the declaration's ``html`` block as a fetched one
would. The crawl engine sees the same session interface (`request`, `stats`,
`start_deadline`), so retries of the engine, dead letters and the reject threshold are unchanged.

Only GET requests are rendered. A challenge page is waited out in the browser (as `lyngsat`'s
clearance does); `html.wait_for` (css) waits for the rows JavaScript adds. A page the browser
cannot render fails the run naming the worker, the URL and the cause, with a screenshot and its
HTML in artifact storage when the browser could take them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode, urlsplit

from ingestion_pipelines.core.redaction import redact_url
from ingestion_pipelines.http_client.results import HttpResult
from ingestion_pipelines.sources.base import SourceError

# The rendered document is text already decoded by Chromium: handed on as UTF-8, saying so.
RENDERED_CONTENT_TYPE = "text/html; charset=utf-8"


class BrowserFetch:
    """The session the engine uses, rendering GET requests in `browser` (a `LazyBrowser`);
    `session` is the run's HTTP session, kept for its stats and deadline."""

    def __init__(
        self,
        worker_id: str,
        session: Any,
        browser: Any,
        wait_for: str | None = None,
        artifacts: Any = None,
        run_id: str | None = None,
    ):
        self.worker_id = worker_id
        self.session = session
        self.browser = browser
        self.wait_for = wait_for
        self.artifacts = artifacts
        self.run_id = run_id
        self.stats = session.stats

    def start_deadline(self, run_timeout_s: float | None) -> None:
        """The run's deadline (kept by the HTTP session)."""
        self.session.start_deadline(run_timeout_s)

    def request(
        self,
        method: str,
        url: str,
        *,
        params=None,
        json=None,
        headers=None,
        conditional: bool = False,
    ) -> HttpResult:
        """The page at `url` (with `params`) as the browser rendered it."""
        from ingestion_pipelines.browser.pool import BrowserPageError

        if method != "GET" or json is not None:
            raise SourceError(f"{self.worker_id}: fetch: browser renders GET requests only")
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
        started = time.monotonic()
        try:
            page = self.browser.fetch(url, wait_for=self.wait_for)
        except BrowserPageError as exc:
            where = self._keep_evidence(exc, url)
            shown = redact_url(url)
            raise SourceError(f"{self.worker_id}: GET {shown}: browser: {exc}{where}") from None
        self.stats.requests += 1
        return HttpResult(
            status=page.status or 200,
            headers={"content-type": RENDERED_CONTENT_TYPE},
            content=page.html.encode("utf-8"),
            url=page.url,
            elapsed_s=time.monotonic() - started,
        )

    def _keep_evidence(self, exc: Any, url: str) -> str:
        evidence = getattr(exc, "evidence", None)
        if evidence is None or self.artifacts is None:
            return ""
        name = urlsplit(url).path.rsplit("/", 1)[-1] or "page"
        saved = self.artifacts.save(
            self.worker_id, self.run_id, name, evidence.screenshot, evidence.html
        )
        links = saved.as_dict()
        return f" (evidence: {', '.join(links.values())})" if links else ""


@contextmanager
def fetch_session(
    source: Any, session: Any, browser: Any, run_id: str | None = None, rate_limiter: Any = None
) -> Iterator[Any]:
    """The session a run of `source` fetches with: `session` itself, or for ``fetch: browser``
    a `BrowserFetch` on a browser started at the first page and closed when the block ends
    (`browser`: the run's `BrowserResource`; each navigation takes a slot of `rate_limiter`,
    the host's shared HTTP rate limit)."""
    spec = getattr(source, "spec", None)
    if spec is None or getattr(spec, "fetch", "http") != "browser":
        yield session
        return
    settings = source.settings
    with browser.pool(
        proxy=settings.proxy,
        rate_limiter=rate_limiter,
        rate_limit_per_s=settings.rate_limit_per_s,
    ) as lazy:
        wait_for = spec.html.wait_for if spec.html is not None else None
        yield BrowserFetch(source.worker_id, session, lazy, wait_for, browser.artifacts(), run_id)
