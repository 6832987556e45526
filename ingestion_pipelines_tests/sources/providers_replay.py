"""Each provider's recording of `vn_indices` and `vn_stock_eod` (VNDIRECT, Vietcap) and `coingecko_markets`
(CoinGecko, CoinPaprika) served at its real path by a local HTTP server that counts requests per
path; a provider can be switched to answer 403 (as the providers' WAFs do) or an empty page.
Used by tests/sources/test_declared_providers.py and benchmarks/failover.py."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ingestion_pipelines.http_client.session import CrawlSession
from ingestion_pipelines.resources.rate_limit import LocalRateLimiter
from ingestion_pipelines.sources.base import Window
from ingestion_pipelines.sources.crawl_result import CrawlResult
from ingestion_pipelines.sources.declared import declared_sources
from ingestion_pipelines.sources.runner import crawl
from ingestion_pipelines.storage.engines import ensure_schema

DEFS = Path(__file__).resolve().parents[2] / "ingestion_pipelines" / "defs"
INDICES = DEFS / "vn_indices" / "data"
VNDIRECT_PATH = "/v4/vnmarket_prices"
VIETCAP_PATH = "/api/chart/OHLCChart/gap-chart"
STOCK_PRICES_PATH = "/v4/stock_prices"
STOCK_DAYS = [date(2026, 9, 15), date(2026, 9, 23)]  # the FPT recording's first and last days
# Vietcap's answer for a stock (its body names the symbol): FPT's recording
VIETCAP_FPT = (DEFS / "vn_stock_eod/data/vietcap_gap_chart_FPT_2026-09-15_23.json").read_bytes()
COINGECKO_PATH = "/api/v3/coins/markets"
COINPAPRIKA_PATH = "/v1/tickers"
DAYS = [date(2025, 12, 3), date(2025, 12, 4), date(2025, 12, 5)]  # the recordings' trading days
BLOCKED_BODY = b"<html><head><title>403 Forbidden</title></head><body>403 Forbidden</body></html>"

SERVED = {
    VNDIRECT_PATH: (INDICES / "vndirect_vnmarket_prices_VN30_2025-12-03_05.json").read_bytes(),
    VIETCAP_PATH: (INDICES / "vietcap_gap_chart_VN30_2025-12-03_05.json").read_bytes(),
    COINGECKO_PATH: (DEFS / "coingecko_markets/data/coingecko_coins_markets.json").read_bytes(),
    COINPAPRIKA_PATH: (
        DEFS / "coinpaprika_markets/data/v1_tickers_2023-07-11_first.json"
    ).read_bytes(),
}


class Providers(BaseHTTPRequestHandler):
    hits: Counter = Counter()
    blocked: set[str] = set()  # paths answering 403
    empty: set[str] = set()  # paths answering a page with no rows

    def _answer(self) -> None:
        path = self.path.split("?")[0]
        type(self).hits[path] += 1
        body = b""
        if int(self.headers.get("Content-Length") or 0):
            body = self.rfile.read(int(self.headers["Content-Length"]))
        if path in self.blocked:
            self._send(403, "text/html", BLOCKED_BODY)
        elif path in self.empty:
            self._send(200, "application/json", b'{"data": [], "totalElements": 0}')
        elif path == COINGECKO_PATH and "page=1" not in self.path:
            self._send(200, "application/json", b"[]")  # CoinGecko's end: an empty page
        elif path == VIETCAP_PATH and b'"FPT"' in body:
            self._send(200, "application/json", VIETCAP_FPT)
        elif path in SERVED:
            self._send(200, "application/json", SERVED[path])
        else:
            self._send(404, "application/json", b'{"error": "not found"}')

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):  # keep the test output clean
        pass


@contextmanager
def serve() -> Iterator[str]:
    """The providers' server (its switches reset), its base URL."""
    Providers.hits = Counter()
    Providers.blocked = set()
    Providers.empty = set()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Providers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def run_worker(
    worker_id: str, url: str, base: str, days: list[date] | None = None, **settings
) -> CrawlResult:
    """One run of a declared worker through the engine (its window: `days`)."""
    return run_source(make_source(worker_id, url, base, days, **settings), url)


def make_source(worker_id: str, url: str, base: str, days: list[date] | None = None, **settings):
    """A declared worker's source pointed at the providers' server (its window: `days`)."""
    cls = declared_sources()[worker_id]
    if worker_id in ("vn_indices", "vn_stock_eod"):
        settings = {"base_url": base, "vietcap_base_url": base, **settings}
    else:
        settings = {"base_url": f"{base}/api/v3", "coinpaprika_base_url": f"{base}/v1", **settings}
    window = None
    if days:
        window = Window(days[0], days[-1] + timedelta(days=1), "Asia/Ho_Chi_Minh")
    return cls(cls.Settings(database_url=url, **settings), window)


def run_source(source, url: str) -> CrawlResult:
    """One run of `source` through the engine into `url`."""
    worker_id = source.worker_id
    session = CrawlSession(
        worker_id, rate_limiter=LocalRateLimiter(), impersonate=None, timeout_s=5,
        backoff_base_s=0.01, backoff_max_s=0.02,
    )  # fmt: skip
    engine = ensure_schema(url)
    return crawl(source, session=session, data_engine=engine, control_engine=engine)
