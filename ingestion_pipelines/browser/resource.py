"""`BrowserResource`: the Dagster resource handing a run its browser (one Chromium per run
process, started on first use), its challenge solver and its artifact storage."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field

from ingestion_pipelines.browser.artifacts import DEFAULT_ROOT, ArtifactStore
from ingestion_pipelines.browser.clearance import BrowserSolver, FlareSolverrSolver, Solver
from ingestion_pipelines.browser.pool import BrowserPool, BrowserSettings, LazyBrowser
from ingestion_pipelines.browser.process import DEFAULT_EXECUTABLE
from ingestion_pipelines.resources.rate_limit import RateLimiter


class BrowserResource(dg.ConfigurableResource):
    """Playwright on the system Chromium. One browser per run process, started on first use
    and closed when the run's step ends (a reaper kills it if the process dies instead)."""

    executable_path: str = Field(
        default=DEFAULT_EXECUTABLE,
        description="the Chromium executable (Debian: /usr/bin/chromium)",
    )
    pool_size: int = Field(default=2, ge=1, le=16, description="browser contexts open at most")
    navigation_timeout_s: float = Field(default=30.0, gt=0, le=600)
    selector_timeout_s: float = Field(default=10.0, gt=0, le=600)
    challenge_timeout_s: float = Field(default=30.0, gt=0, le=600)
    user_agent: str | None = Field(
        default=None, description="User-Agent of the contexts (None: the desktop Chrome one)"
    )
    block_third_party: bool = Field(
        default=False,
        description="abort subresources from other hosts than the page's (ads, analytics)",
    )
    flaresolverr_url: str | None = Field(
        default=None,
        description="clear challenges through this FlareSolverr (POST /v1 request.get) instead",
    )
    artifacts_url: str | None = Field(
        default=None,
        description="where failed pages' screenshots and HTML go: a folder or an fsspec URL "
        f"(None: INGEST_ARTIFACTS_URL when set, read when used, else {DEFAULT_ROOT})",
    )
    artifacts_retention_days: float = Field(default=14.0, gt=0, le=3650)

    def settings(self, proxy: str | None = None) -> BrowserSettings:
        """The pool's settings (`proxy`: the worker's, used by every context)."""
        return BrowserSettings(
            executable_path=self.executable_path,
            pool_size=self.pool_size,
            navigation_timeout_s=self.navigation_timeout_s,
            selector_timeout_s=self.selector_timeout_s,
            proxy=proxy,
            user_agent=self.user_agent,
            block_third_party=self.block_third_party,
        )

    @contextmanager
    def pool(
        self,
        *,
        proxy: str | None = None,
        rate_limiter: RateLimiter | None = None,
        rate_limit_per_s: float | None = None,
    ) -> Iterator[LazyBrowser]:
        """A lazily started browser for one run: Chromium starts at the first page that needs
        it, and is closed when the block ends."""
        lazy = LazyBrowser(
            BrowserPool(
                self.settings(proxy), rate_limiter=rate_limiter, rate_limit_per_s=rate_limit_per_s
            )
        )
        try:
            yield lazy
        finally:
            lazy.close()

    def solver(
        self, browser: LazyBrowser, proxy: str | None = None, flaresolverr_url: str | None = None
    ) -> Solver:
        """FlareSolverr when a `flaresolverr_url` is given (the worker's setting, else this
        resource's), else the run's own browser."""
        service = flaresolverr_url or self.flaresolverr_url
        if service:
            return FlareSolverrSolver(service, self.challenge_timeout_s, proxy)
        return BrowserSolver(browser, self.challenge_timeout_s)  # type: ignore[arg-type]

    def artifacts(self) -> ArtifactStore:
        """The artifact storage for failure evidence."""
        root = self.artifacts_url or os.environ.get("INGEST_ARTIFACTS_URL") or DEFAULT_ROOT
        return ArtifactStore(root, self.artifacts_retention_days)
