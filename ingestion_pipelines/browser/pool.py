"""`BrowserPool`: one Chromium per process under Playwright, a bounded pool of contexts, and a
thread-safe synchronous face for the crawl's worker threads.

Playwright's async API runs on an event loop in one background thread; callers on any thread
submit work to it and wait. At most `pool_size` contexts are open (each with its own proxy and
user agent: a context is reused by requests asking for the same pair, the least recently used
idle one closed to make room); every navigation first takes a slot from the host's shared rate
limit (`resources.rate_limit`), as HTTP requests do. A page that fails (timeout, selector
missing, challenge not cleared) raises `BrowserPageError` carrying a full-page screenshot and
the page's HTML.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from loguru import logger

from ingestion_pipelines.browser.process import (
    CHROMIUM_FLAGS,
    DEFAULT_EXECUTABLE,
    BrowserStartError,
    Reaper,
    check_executable,
    new_marker,
    start_reaper,
)
from ingestion_pipelines.core.redaction import redact_url
from ingestion_pipelines.resources.rate_limit import RateLimiter, rate_limit_host

T = TypeVar("T")
# Titles of the interstitial pages anti-bot services answer with.
CHALLENGE_TITLES = ("just a moment", "checking your browser", "attention required", "please wait")


@dataclass(frozen=True)
class BrowserSettings:
    """How the browser runs: executable, pool size, timeouts, default proxy and user agent."""

    executable_path: str = DEFAULT_EXECUTABLE
    pool_size: int = 2
    navigation_timeout_s: float = 30.0
    selector_timeout_s: float = 10.0
    headless: bool = True
    proxy: str | None = None
    user_agent: str | None = None
    extra_args: tuple[str, ...] = ()
    # Abort subresources from other hosts than the page's (ads, analytics, CDNs): faster, and
    # nothing leaves for hosts the crawl never meant to reach. Off by default: some challenges
    # load their scripts from another host (Turnstile: challenges.cloudflare.com).
    block_third_party: bool = False


@dataclass
class Evidence:
    """What a failed page looked like: a full-page PNG screenshot and its HTML."""

    url: str
    screenshot: bytes | None
    html: str | None


class BrowserPageError(RuntimeError):
    """A page failed in the browser; `evidence` shows what it looked like."""

    def __init__(self, message: str, evidence: Evidence | None = None):
        super().__init__(message)
        self.evidence = evidence


@dataclass
class PageResult:
    """A page as the browser rendered it, with the context's cookies and user agent."""

    url: str
    status: int | None
    html: str
    title: str
    user_agent: str
    cookies: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0


class BrowserPool:
    """One browser, at most `pool_size` contexts. Use as a context manager or `start()` /
    `close()`; safe to call from any thread."""

    def __init__(
        self,
        settings: BrowserSettings | None = None,
        *,
        rate_limiter: RateLimiter | None = None,
        rate_limit_per_s: float | None = None,
    ):
        self.settings = settings or BrowserSettings()
        self.rate_limiter = rate_limiter
        self.rate_limit_per_s = rate_limit_per_s
        self.marker = new_marker()
        self.navigations = 0
        self.start_s: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._reaper: Reaper | None = None
        self._playwright = None
        self._browser = None
        self._slots: asyncio.Semaphore | None = None
        self._idle: OrderedDict[tuple, list] = OrderedDict()
        self._open = 0
        self.default_user_agent: str | None = None

    # -- life cycle -----------------------------------------------------------------------
    def __enter__(self) -> BrowserPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> BrowserPool:
        """Start Chromium (and its reaper); returns self."""
        if self._browser is not None:
            return self
        check_executable(self.settings.executable_path)
        started = time.monotonic()
        self._reaper = start_reaper(self.marker)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="browser-loop", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._launch())
        except Exception as exc:
            self.close()
            raise BrowserStartError(
                f"Chromium at {self.settings.executable_path!r} did not start: {exc}"
            ) from exc
        self.start_s = time.monotonic() - started
        logger.info(
            "browser started in {:.2f}s ({} contexts at most)",
            self.start_s,
            self.settings.pool_size,
        )
        return self

    async def _launch(self) -> None:
        from playwright.async_api import async_playwright

        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(
            executable_path=self.settings.executable_path,
            headless=self.settings.headless,
            args=[*CHROMIUM_FLAGS, *self.settings.extra_args, self.marker],
            timeout=max(self.settings.navigation_timeout_s, 30) * 1000,
        )
        self._slots = asyncio.Semaphore(max(1, self.settings.pool_size))
        major = self._browser.version.split(".")[0]
        # Headless Chromium says "HeadlessChrome" in its User-Agent, which anti-bot services
        # refuse outright: contexts send the desktop browser's unless one is configured.
        self.default_user_agent = self.settings.user_agent or (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/{major}.0.0.0 Safari/537.36"
        )

    def close(self) -> None:
        """Close every context and the browser; the reaper kills whatever is left."""
        if self._loop is not None and self._loop.is_running():
            try:
                self._call(self._shutdown(), timeout=20)
            except Exception as exc:  # noqa: BLE001 - the reaper finishes the job
                logger.warning("browser did not close cleanly: {}", exc)
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
        if self._loop is not None and not self._loop.is_running():
            self._loop.close()
        self._loop = None
        if self._reaper is not None:
            self._reaper.release()
            self._reaper = None

    async def _shutdown(self) -> None:
        for contexts in self._idle.values():
            for context in contexts:
                await context.close()
        self._idle.clear()
        if self._browser is not None:
            await self._browser.close()
            self._browser = None
        if self._playwright is not None:
            await self._playwright.stop()
            self._playwright = None

    def _call(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        if self._loop is None:
            raise BrowserStartError("the browser pool is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- contexts -------------------------------------------------------------------------
    async def _take_context(self, proxy: str | None, user_agent: str | None):
        key = (proxy, user_agent)
        contexts = self._idle.get(key)
        if contexts:
            self._idle.move_to_end(key)
            return contexts.pop()
        if self._open >= self.settings.pool_size:
            await self._close_least_recent()
        options: dict[str, Any] = {"ignore_https_errors": False}
        if proxy:
            options["proxy"] = {"server": proxy}
        if user_agent:
            options["user_agent"] = user_agent
        context = await self._browser.new_context(**options)
        if self.settings.block_third_party:
            await context.route("**/*", _same_host_only)
        context.set_default_navigation_timeout(self.settings.navigation_timeout_s * 1000)
        context.set_default_timeout(self.settings.selector_timeout_s * 1000)
        self._open += 1
        return context

    async def _close_least_recent(self) -> None:
        for key, contexts in self._idle.items():
            if contexts:
                await contexts.pop(0).close()
                self._open -= 1
                if not contexts:
                    del self._idle[key]
                return

    def _give_back(self, context, proxy: str | None, user_agent: str | None) -> None:
        self._idle.setdefault((proxy, user_agent), []).append(context)
        self._idle.move_to_end((proxy, user_agent))

    async def _with_page(
        self,
        url: str,
        work: Callable[[Any], Awaitable[T]],
        proxy: str | None,
        user_agent: str | None,
    ) -> T:
        proxy = proxy if proxy is not None else self.settings.proxy
        user_agent = user_agent if user_agent is not None else self.default_user_agent
        async with self._slots:
            context = await self._take_context(proxy, user_agent)
            page = await context.new_page()
            try:
                return await work(page)
            except BrowserPageError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure leaves its evidence
                raise BrowserPageError(
                    f"{redact_url(url)}: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                    await _evidence(page, url),
                ) from None
            finally:
                await page.close()
                self._give_back(context, proxy, user_agent)

    async def _navigate(self, page, url: str):
        if self.rate_limiter is not None:
            await asyncio.to_thread(
                self.rate_limiter.acquire, rate_limit_host(url), self.rate_limit_per_s
            )
        self.navigations += 1
        return await page.goto(url, wait_until="load")

    # -- what callers use -----------------------------------------------------------------
    def fetch(
        self,
        url: str,
        *,
        wait_for: str | None = None,
        clear_challenge: bool = True,
        challenge_timeout_s: float | None = None,
        proxy: str | None = None,
        user_agent: str | None = None,
    ) -> PageResult:
        """Open `url` and return the rendered page. With `clear_challenge`, an anti-bot
        interstitial is waited out (until its title is gone and the page's own response came);
        `wait_for` waits for a selector. Raises `BrowserPageError` with evidence."""
        timeout = challenge_timeout_s or self.settings.navigation_timeout_s

        async def work(page) -> PageResult:
            started = time.monotonic()
            latest = _track_navigations(page)
            response = await self._navigate(page, url)
            status = response.status if response is not None else None
            if clear_challenge and await _is_challenge_page(page, status):
                status = await _wait_cleared(page, latest, timeout)
            if wait_for:
                await page.wait_for_selector(wait_for)
            html, title, agent = await _settled(page)
            return PageResult(
                url=page.url,
                status=latest["status"] or status,
                html=html,
                title=title,
                user_agent=agent,
                cookies=await page.context.cookies(),
                elapsed_s=time.monotonic() - started,
            )

        return self._call(self._with_page(url, work, proxy, user_agent))

    def render_evidence(self, html: str, url: str) -> Evidence:
        """A full-page screenshot of `html` (e.g. a page fetched over HTTP that could not be
        parsed) as the browser lays it out; scripts and network are off while it renders."""

        async def work(page) -> Evidence:
            await page.route("**/*", lambda route: route.abort())
            await page.set_content(html, wait_until="domcontentloaded")
            return Evidence(url, await page.screenshot(full_page=True), html)

        return self._call(self._with_page(url, work, None, None))

    def open_contexts(self) -> int:
        """How many contexts are open now."""
        return self._open


async def _is_challenge_page(page, status: int | None) -> bool:
    try:
        title = (await page.title()).strip().lower()
    except Exception:  # noqa: BLE001 - the page is navigating: not settled yet
        return True
    return (status in (403, 429, 503)) or any(title.startswith(t) for t in CHALLENGE_TITLES)


async def _same_host_only(route) -> None:
    """Let navigations and same-host subresources through; abort the others."""
    request = route.request
    try:
        page_url = request.frame.page.url
    except Exception:  # noqa: BLE001 - a worker's or a detached frame's request
        page_url = ""
    same_host = urlsplit(request.url).netloc == urlsplit(page_url).netloc
    if request.is_navigation_request() or not page_url.startswith("http") or same_host:
        await route.continue_()
    else:
        await route.abort()


async def _settled(page, attempts: int = 20) -> tuple[str, str, str]:
    """The page's HTML, title and User-Agent once it has stopped navigating (a navigation that
    started meanwhile, e.g. the challenge's reload landing late, is waited for)."""
    for attempt in range(attempts):
        try:
            await page.wait_for_load_state("load")
            # the document being read is the one that finished loading (not a newer one still
            # streaming in after the challenge's reload)
            await page.wait_for_function("document.readyState === 'complete'", polling=50)
            return (
                await page.content(),
                await page.title(),
                await page.evaluate("navigator.userAgent"),
            )
        except Exception as exc:  # noqa: BLE001
            if "navigat" not in str(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _track_navigations(page) -> dict[str, int | None]:
    """The status of the main frame's latest navigation response, kept up to date."""
    latest: dict[str, int | None] = {"status": None}

    def seen(response) -> None:
        if response.request.is_navigation_request() and response.frame == page.main_frame:
            latest["status"] = response.status

    page.on("response", seen)
    return latest


async def _wait_cleared(page, latest: dict[str, int | None], timeout_s: float) -> int | None:
    """Wait until the challenge has navigated to the real page (polling every 50 ms whether the
    latest navigation answered below 400 without a challenge title); its status."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not await _is_challenge_page(page, latest["status"]):
            try:
                await page.wait_for_load_state("load")
            except Exception:  # noqa: BLE001 - navigating again: look again
                continue
            if not await _is_challenge_page(page, latest["status"]):
                return latest["status"]
        await asyncio.sleep(0.05)
    raise BrowserPageError(
        f"{redact_url(page.url)}: challenge not cleared within {timeout_s:g}s",
        await _evidence(page, page.url),
    )


async def _evidence(page, url: str) -> Evidence:
    screenshot = html = None
    try:
        screenshot = await page.screenshot(full_page=True, timeout=10_000)
    except Exception as exc:  # noqa: BLE001 - evidence is best effort
        logger.debug("no screenshot of {}: {}", redact_url(url), exc)
    try:
        html = await page.content()
    except Exception as exc:  # noqa: BLE001
        logger.debug("no HTML of {}: {}", redact_url(url), exc)
    return Evidence(url, screenshot, html)


class LazyBrowser:
    """A `BrowserPool` started at first use (a crawl over HTTP may never need it)."""

    def __init__(self, pool: BrowserPool):
        self._pool = pool
        self._lock = threading.Lock()
        self.started = False

    def get(self) -> BrowserPool:
        """The started pool."""
        with self._lock:
            if not self.started:
                self._pool.start()
                self.started = True
        return self._pool

    def fetch(self, url: str, **kwargs):
        """`BrowserPool.fetch` on the started pool."""
        return self.get().fetch(url, **kwargs)

    def render_evidence(self, html: str, url: str):
        """`BrowserPool.render_evidence` on the started pool."""
        return self.get().render_evidence(html, url)

    @property
    def navigations(self) -> int:
        """Navigations made so far (0 when never started)."""
        return self._pool.navigations if self.started else 0

    def close(self) -> None:
        """Close the browser if it was started."""
        with self._lock:
            if self.started:
                self._pool.close()
                self.started = False
