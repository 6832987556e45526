"""Challenge clearance, then HTTP speed: a page behind an anti-bot challenge is opened once in a
real browser (or by a FlareSolverr service), and its cookies and exact User-Agent are handed to
the crawl's curl_cffi session, so every other page is fetched over plain HTTP. When the
clearance expires or is refused (the challenge comes back), it is cleared again.

A response is a challenge when its status is 403 or 503 with `cf-mitigated: challenge`, or
when its body is an interstitial ("Just a moment...", "Checking your browser").
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from curl_cffi import requests as curl_requests
from loguru import logger

from ingestion_pipelines.browser.pool import CHALLENGE_TITLES, BrowserPool
from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.core.redaction import redact_url
from ingestion_pipelines.http_client.results import HttpResult
from ingestion_pipelines.http_client.session import CrawlSession

CHALLENGE_STATUSES = (403, 429, 503)
MAX_CLEARANCES_PER_REQUEST = 3


class ClearanceError(IngestError, RuntimeError):
    """A challenge could not be cleared (the message names the URL and the cause)."""


@dataclass
class Clearance:
    """What passing a challenge gave: cookies (Playwright's shape: name, value, domain, path,
    expires) and the User-Agent they are bound to."""

    cookies: list[dict[str, Any]]
    user_agent: str
    cleared_at: float = field(default_factory=time.monotonic)
    solver: str = "browser"


def is_challenge(result: HttpResult) -> bool:
    """True when the response is an anti-bot challenge rather than the page."""
    if result.status not in CHALLENGE_STATUSES:
        return False
    if (result.headers.get("cf-mitigated") or "").lower() == "challenge":
        return True
    head = result.content[:4096].decode("latin-1").lower()
    return any(f"<title>{t}" in head for t in CHALLENGE_TITLES)


class Solver(Protocol):
    """Clears the challenge at a URL."""

    name: str

    def clear(self, url: str) -> Clearance: ...


class BrowserSolver:
    """Clears challenges in the run's own Chromium (`BrowserPool`)."""

    name = "browser"

    def __init__(self, pool: BrowserPool, timeout_s: float = 30.0):
        self.pool = pool
        self.timeout_s = timeout_s

    def clear(self, url: str) -> Clearance:
        page = self.pool.fetch(url, clear_challenge=True, challenge_timeout_s=self.timeout_s)
        if page.status is not None and page.status >= 400:
            raise ClearanceError(
                f"{redact_url(url)}: the browser got {page.status} after the challenge"
            )
        return Clearance(page.cookies, page.user_agent, solver=self.name)


class FlareSolverrSolver:
    """Clears challenges through a FlareSolverr service: `POST <url>/v1` with
    `{"cmd": "request.get", "url": ..., "maxTimeout": ms}`; its `solution` carries the cookies
    and the User-Agent of the browser that passed."""

    name = "flaresolverr"

    def __init__(self, service_url: str, timeout_s: float = 60.0, proxy: str | None = None):
        self.endpoint = service_url.rstrip("/") + "/v1"
        self.timeout_s = timeout_s
        self.proxy = proxy

    def clear(self, url: str) -> Clearance:
        command: dict[str, Any] = {
            "cmd": "request.get",
            "url": url,
            "maxTimeout": int(self.timeout_s * 1000),
        }
        if self.proxy:
            command["proxy"] = {"url": self.proxy}
        try:
            answer = curl_requests.post(
                self.endpoint,
                data=orjson.dumps(command),
                headers={"Content-Type": "application/json"},
                timeout=self.timeout_s + 10,
            )
            body = orjson.loads(answer.content)
        except Exception as exc:  # noqa: BLE001 - any failure of the service is a clearance failure
            raise ClearanceError(
                f"{redact_url(url)}: FlareSolverr at {redact_url(self.endpoint)}: {exc}"
            ) from None
        solution = body.get("solution") if isinstance(body, dict) else None
        if body.get("status") != "ok" or not isinstance(solution, dict):
            raise ClearanceError(
                f"{redact_url(url)}: FlareSolverr answered {body.get('status')!r}: "
                f"{str(body.get('message'))[:200]}"
            )
        return Clearance(
            list(solution.get("cookies") or []),
            str(solution.get("userAgent") or ""),
            solver=self.name,
        )


class ClearedFetcher:
    """Fetches over the crawl's `CrawlSession`, clearing challenges with `solver` when one
    answers: the clearance's cookies and User-Agent are adopted by the session and the request
    is sent again. Thread-safe: one clearance at a time, shared by every thread."""

    def __init__(self, session: CrawlSession, solver: Solver):
        self.session = session
        self.solver = solver
        self.clearances = 0
        self.current: Clearance | None = None
        self._lock = threading.Lock()
        self._generation = 0

    def get(self, url: str, **kwargs: Any) -> HttpResult:
        """GET `url`; a challenge is cleared (again, if a clearance expired) and the request
        retried, up to `MAX_CLEARANCES_PER_REQUEST` times. Other 4xx/5xx raise as usual."""
        for _attempt in range(MAX_CLEARANCES_PER_REQUEST + 1):
            generation = self._generation
            result = self.session.request("GET", url, accept_statuses=CHALLENGE_STATUSES, **kwargs)
            if not is_challenge(result):
                if result.status in CHALLENGE_STATUSES:
                    return self.session.request("GET", url, **kwargs)  # raise as usual
                return result
            self._clear(url, generation)
        raise ClearanceError(
            f"{redact_url(url)}: still a challenge after {MAX_CLEARANCES_PER_REQUEST} clearances "
            f"by {self.solver.name}"
        )

    def _clear(self, url: str, seen_generation: int) -> None:
        with self._lock:
            if self._generation != seen_generation:
                return  # another thread cleared meanwhile: try with its clearance
            started = time.monotonic()
            clearance = self.solver.clear(url)
            self.session.adopt_clearance(clearance.cookies, clearance.user_agent)
            self.current = clearance
            self.clearances += 1
            self._generation += 1
            logger.bind(worker_id=self.session.worker_id).info(
                "challenge at {} cleared by {} in {:.2f}s ({} cookies); continuing over HTTP",
                redact_url(url),
                clearance.solver,
                time.monotonic() - started,
                len(clearance.cookies),
            )
