"""Challenge clearance, then HTTP speed, measured side by side in one run (issue 20).

`--pages` satellite pages (copies of the captured Amos 3/7 page, 133 KB, ISO-8859-1) are served
by the LyngSat replay behind the JavaScript challenge. Each page is fetched, at the same
concurrency, two ways (the ratio compares the fetching; every page fetched either way is then
parsed into its transponder and channel rows, the same work for both, timed apart):

1. clear once: the first challenge is cleared in Chromium, its cookie and User-Agent go to the
   curl_cffi session, every page comes over HTTP;
2. every page in the browser: a Playwright page per URL in a pool of `--contexts` contexts.

Also printed: the browser's start time (median of three fresh starts) and the peak memory of the
browser with `--contexts` contexts open (sum of the proportional set size, PSS, of Chromium's
processes and Playwright's driver, sampled every 50 ms during part 2).

Goals: part 1 ≥ 10× faster than part 2; peak memory of 4 contexts < 1 GB; start < 5 s.

Usage: .venv/bin/python benchmarks/browser_clearance.py [--pages 200] [--contexts 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingestion_pipelines.browser.clearance import BrowserSolver, ClearedFetcher  # noqa: E402
from ingestion_pipelines.browser.pool import BrowserPool, BrowserSettings  # noqa: E402
from ingestion_pipelines.browser.process import browser_group_members  # noqa: E402
from ingestion_pipelines.http_client.resource import HttpClientResource  # noqa: E402
from ingestion_pipelines.replay.http_server import ReplayServer  # noqa: E402
from ingestion_pipelines.sources.lyngsat.pages import parse_satellite_page  # noqa: E402


def pss_bytes(pid: int) -> int:
    """The proportional set size of a process (shared pages split among their users)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def browser_pids(pool: BrowserPool) -> list[int]:
    """Chromium's processes (its group) and Playwright's driver (the node child of this one)."""
    pids = set(browser_group_members(pool.marker))
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as cmd:
                    if parent == os.getpid() and b"playwright" in cmd.read():
                        pids.add(int(entry))
            except (OSError, ValueError):
                continue
    return sorted(pids)


class PeakMemory:
    """Samples the browser's total PSS every 50 ms in a thread; `peak` is the highest."""

    def __init__(self, pool: BrowserPool):
        self.pool = pool
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(pss_bytes(p) for p in browser_pids(self.pool)))
            self._stop.wait(0.05)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def parse(body: bytes, url: str) -> int:
    page = parse_satellite_page(body, url)
    return len(page.transponders) + len(page.channels)


def clear_once_then_http(
    pool: BrowserPool, urls: list[str], workers: int
) -> tuple[float, list[bytes], int]:
    """Seconds, the pages' bodies, clearances."""
    with HttpClientResource(redis_url="").session("bench", max_retries=0) as http:
        fetcher = ClearedFetcher(http, BrowserSolver(pool))
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as threads:
            bodies = list(threads.map(lambda url: fetcher.get(url).content, urls))
        return time.perf_counter() - started, bodies, fetcher.clearances


def every_page_in_browser(
    pool: BrowserPool, urls: list[str], workers: int
) -> tuple[float, list[bytes]]:
    """Seconds, the rendered pages (re-encoded as they declare: windows-1252)."""
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as threads:
        pages = list(threads.map(lambda url: pool.fetch(url).html, urls))
    return time.perf_counter() - started, [p.encode("cp1252", errors="replace") for p in pages]


def parse_all(bodies: list[bytes], urls: list[str]) -> tuple[float, int]:
    """Seconds, rows (transponders and channels) of every page."""
    started = time.perf_counter()
    rows = sum(parse(body, url) for body, url in zip(bodies, urls, strict=True))
    return time.perf_counter() - started, rows


def start_times(runs: int = 3) -> list[float]:
    """Fresh browser starts (Chromium and Playwright's driver), seconds."""
    times = []
    for _ in range(runs):
        pool = BrowserPool(BrowserSettings(pool_size=1)).start()
        times.append(pool.start_s)
        pool.close()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--contexts", type=int, default=4)
    args = parser.parse_args(argv)

    starts = start_times()
    print(
        f"browser start: median {statistics.median(starts):.2f}s of {', '.join(f'{s:.2f}' for s in starts)}"
    )
    with ReplayServer() as server:
        names = server.dataset.lyngsat_site.add_copies(args.pages)
        urls = [f"{server.url}/lyngsat/{name}.html" for name in names]
        # The captured page pulls ads and scripts from other hosts, unreachable here: both ways
        # block them (`block_third_party`), so the browser is timed on the site's own page.
        settings = BrowserSettings(
            pool_size=args.contexts, navigation_timeout_s=60, block_third_party=True
        )
        with BrowserPool(settings) as pool:
            http_s, bodies, clearances = clear_once_then_http(pool, urls, args.contexts)
        parse_s, http_rows = parse_all(bodies, urls)
        print(
            f"1. clear once, then HTTP: {len(urls)} pages in {http_s:.2f}s "
            f"({len(urls) / http_s:.1f} pages/s), {clearances} clearance; "
            f"parsed in {parse_s:.2f}s: {http_rows} rows"
        )
        with BrowserPool(settings) as pool, PeakMemory(pool) as memory:
            browser_s, rendered = every_page_in_browser(pool, urls, args.contexts)
            contexts = pool.open_contexts()
        parse_b, browser_rows = parse_all(rendered, urls)
        print(
            f"2. every page in the browser: {len(urls)} pages in {browser_s:.2f}s "
            f"({len(urls) / browser_s:.1f} pages/s), {contexts} contexts; "
            f"parsed in {parse_b:.2f}s: {browser_rows} rows"
        )
        gate = server.dataset.lyngsat_site.gate
        print(
            f"   challenge: {gate.challenges} served, {gate.passed} passed, {gate.refused} refused"
        )
    ratio = browser_s / http_s
    peak_mb = memory.peak / 1e6
    print(f"ratio: {ratio:.1f}x (goal >= 10x)")
    print(f"with the parsing: {(browser_s + parse_b) / (http_s + parse_s):.1f}x")
    print(f"peak memory, {args.contexts} contexts: {peak_mb:.0f} MB PSS (goal < 1000 MB)")
    ok = (
        ratio >= 10
        and peak_mb < 1000
        and statistics.median(starts) < 5
        and http_rows == browser_rows
    )
    print("goals met" if ok else "GOALS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
