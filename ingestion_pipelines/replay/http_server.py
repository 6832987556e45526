"""The HTTP replay server: the six scheduled sources at their real paths, on one port.

    with ReplayServer(host="127.0.0.1", port=0) as server:      # serves in a background thread
        server.url                                              # "http://127.0.0.1:PORT"
        server.faults.add(path="/api/v3/coins/markets", status=429, times=2, retry_after=1)
        server.requests                                         # every request received
        server.dataset.nav(23, date(2026, 11, 20))              # what it serves

``ingest replay`` runs :func:`main`, which prints the ``INGEST_<WORKER>__BASE_URL`` lines that
point each worker here.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from http.client import responses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from ingestion_pipelines.replay import bench, coingecko, fear_greed, fmarket, vndirect
from ingestion_pipelines.replay.dataset import ReplayDataset
from ingestion_pipelines.replay.rss import BLOCKED_BODY, CONTENT_TYPE, is_browser

DEFAULT_PORT = 8765
COINGECKO_PREFIX = "/api/v3"
JSON = "application/json; charset=utf-8"

# worker id -> the part of the URL after the server's root (contract: documented paths append)
WORKER_BASE_PATHS = {
    "fmarket_funds": "",
    "fmarket_nav": "",
    "vnexpress_news": "",
    "cafef_news": "",
    "coingecko_markets": COINGECKO_PREFIX,
    "fear_greed": "",
    "vn_stocks": "",
    "vn_stock_eod": "",
}


@dataclass
class ReplayRequest:
    """One request as the server received it."""

    method: str
    path: str  # without the query string
    query: dict[str, str]  # last value wins for a repeated name
    headers: dict[str, str]  # names lower-cased
    body: bytes
    time: float  # time.time() when it arrived
    raw_query: str = ""

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, **headers: str) -> Response:
        return cls(status, orjson.dumps(payload), {"Content-Type": JSON, **headers})


# ---------------------------------------------------------------- faults


@dataclass
class Fault:
    """What the next matching request(s) get instead of the normal answer.

    ``status`` None with a ``body``: a 200 carrying that body. ``status`` and ``body`` both None
    with a ``delay``: the normal answer, late. ``drop``: the connection closes unanswered."""

    path: str
    status: int | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = 1  # None: every matching request, until removed
    retry_after: float | None = None
    delay: float = 0.0
    method: str | None = None
    drop: bool = False
    hits: int = 0

    def response(self) -> Response | None:
        if self.status is None and self.body is None:
            return None
        status = self.status or 200
        body = self.body
        if body is None:
            if status == 429 and self.path.startswith(COINGECKO_PREFIX):
                body = orjson.dumps(coingecko.RATE_LIMIT_BODY)
            else:
                body = responses.get(status, "").encode()
        is_json = body[:1] in (b"{", b"[")
        headers = {"Content-Type": JSON if is_json else "text/plain; charset=utf-8"}
        if self.retry_after is not None:
            headers["Retry-After"] = f"{self.retry_after:g}"
        return Response(status, body, {**headers, **self.headers})


class FaultRegistry:
    """Faults armed by tests; the first armed fault matching a request is consumed."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(
        self,
        path: str,
        status: int | None = None,
        *,
        times: int | None = 1,
        body: bytes | str | dict | list | None = None,
        headers: dict[str, str] | None = None,
        retry_after: float | None = None,
        delay: float = 0.0,
        method: str | None = None,
        drop: bool = False,
    ) -> Fault:
        if isinstance(body, dict | list):
            body = orjson.dumps(body)
        elif isinstance(body, str):
            body = body.encode("utf-8")
        fault = Fault(
            path, status, body, dict(headers or {}), times, retry_after, delay, method, drop
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path == path and fault.method in (None, method):
                    fault.hits += 1
                    if fault.times is not None and fault.hits >= fault.times:
                        self._faults.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def __len__(self) -> int:
        return len(self._faults)


# ---------------------------------------------------------------- routes


def _fmarket_body(request: ReplayRequest) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError:
        raise fmarket.BadRequest("Request body không hợp lệ") from None
    if not isinstance(body, dict):
        raise fmarket.BadRequest("Request body không hợp lệ")
    return body


def products_filter(request: ReplayRequest, dataset: ReplayDataset) -> Response:
    body = _fmarket_body(request)
    try:
        data = fmarket.filter_products(dataset.funds, body, page_cap=dataset.fmarket_page_cap)
    except (TypeError, ValueError):
        raise fmarket.BadRequest("page/pageSize không hợp lệ", "page") from None
    return Response.json(fmarket.envelope(data))


def nav_history(request: ReplayRequest, dataset: ReplayDataset) -> Response:
    product_id, start, end, all_data = fmarket.history_window(_fmarket_body(request))
    if start is not None and not all_data and dataset.nav_history_days_before:
        start -= timedelta(days=dataset.nav_history_days_before)  # a server over-returning
    rows = dataset.nav_rows(product_id, None if all_data else start, end)
    return Response.json(fmarket.envelope(rows))


def coins_markets(request: ReplayRequest, dataset: ReplayDataset) -> Response:
    try:
        return Response.json(coingecko.markets(dataset.coins, request.query))
    except coingecko.QueryError as exc:
        return Response.json({"error": str(exc)}, 400)


def fng(request: ReplayRequest, dataset: ReplayDataset) -> Response:
    body = fear_greed.index(
        request.query, dataset.now(), dataset.fng, stamp_hour=dataset.fng_stamp_hour
    )
    return Response.json(body)


def rss_feed(request: ReplayRequest, dataset: ReplayDataset) -> Response | None:
    feed = dataset.feeds.get(request.path)
    if feed is None:
        return None
    if feed.browser_only and not is_browser(request.headers.get("user-agent")):
        return Response(503, BLOCKED_BODY, {"Content-Type": "text/html"})
    headers = {"ETag": feed.etag, "Last-Modified": feed.last_modified_header}
    if feed.not_modified(request.headers):
        return Response(304, b"", headers)
    return Response(200, feed.body, {"Content-Type": CONTENT_TYPE, **headers})


def vndirect_stocks(request: ReplayRequest, dataset: ReplayDataset) -> Response:
    time.sleep(dataset.vn_stocks.latency_s)
    try:
        return Response.json(dataset.vn_stocks.listing(request.query))
    except vndirect.QueryError as exc:
        return Response.json({"error": str(exc)}, 400)


def vndirect_prices(request: ReplayRequest, dataset: ReplayDataset) -> Response:
    time.sleep(dataset.vn_stocks.latency_s)
    try:
        return Response.json(dataset.vn_stocks.prices(request.query))
    except vndirect.QueryError as exc:
        return Response.json({"error": str(exc)}, 400)


def bench_eod(request: ReplayRequest, dataset: ReplayDataset) -> Response:
    status, body = bench.eod(request.query)
    return Response.json(body, status)


Route = Callable[[ReplayRequest, ReplayDataset], Response]
ROUTES: dict[str, dict[str, Route]] = {
    "/res/products/filter": {"POST": products_filter},
    "/res/product/get-nav-history": {"POST": nav_history},
    COINGECKO_PREFIX + "/coins/markets": {"GET": coins_markets},
    "/fng/": {"GET": fng},
    "/fng": {"GET": fng},
    vndirect.STOCKS_PATH: {"GET": vndirect_stocks},
    vndirect.PRICES_PATH: {"GET": vndirect_prices},
    bench.PATH: {"GET": bench_eod},
}


# ---------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def version_string(self) -> str:
        return "nginx"

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def _serve(self) -> None:
        replay = self.server.replay
        url = urlsplit(self.path)
        request = ReplayRequest(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self._read_body(),
            time=time.time(),
            raw_query=url.query,
        )
        with replay._requests_lock:
            replay.requests.append(request)
            replay.in_flight += 1
            replay.peak_in_flight = max(replay.peak_in_flight, replay.in_flight)
        try:
            if replay.latency_s:
                time.sleep(replay.latency_s)
            response = replay.respond(request)
        except Exception:  # a bug here must still answer, and say why
            traceback.print_exc()
            response = Response(
                500, traceback.format_exc().encode(), {"Content-Type": "text/plain"}
            )
        finally:
            with replay._requests_lock:
                replay.in_flight -= 1
        if response is None:  # a dropped connection
            self.close_connection = True
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status != 304:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and response.status != 304:
            self.wfile.write(response.body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.replay.verbose:
            super().log_message(format, *args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # concurrent crawlers open many connections at once
    replay: ReplayServer


class ReplayServer:
    """The replay of fmarket, VnExpress, CafeF, CoinGecko and alternative.me on one port."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        dataset: ReplayDataset | None = None,
        coingecko_rate_limit: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.dataset = dataset or ReplayDataset()
        self.faults = FaultRegistry()
        self.requests: list[ReplayRequest] = []
        self.verbose = verbose
        self.coingecko_limit = (
            coingecko.RateLimit(coingecko_rate_limit) if coingecko_rate_limit else None
        )
        self._requests_lock = threading.Lock()
        self.latency_s = 0.0  # injected before every answer, like a distant server's
        self.in_flight = 0  # requests being answered now, and the most at once
        self.peak_in_flight = 0
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.replay = self
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ addresses

    @property
    def host(self) -> str:
        return self._httpd.server_address[0]

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def base_urls(self) -> dict[str, str]:
        """worker id -> the ``base_url`` that points the worker at this server."""
        return {worker: self.url + suffix for worker, suffix in WORKER_BASE_PATHS.items()}

    def env(self) -> dict[str, str]:
        """The ``INGEST_<WORKER>__BASE_URL`` variables for every worker served here."""
        return {f"INGEST_{w.upper()}__BASE_URL": url for w, url in self.base_urls().items()}

    def requests_for(self, path: str, method: str | None = None) -> list[ReplayRequest]:
        with self._requests_lock:
            return [r for r in self.requests if r.path == path and method in (None, r.method)]

    # ------------------------------------------------------------ life cycle

    def start(self) -> ReplayServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},  # shutdown() returns within one poll
                name=f"replay-http-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ answering

    def respond(self, request: ReplayRequest) -> Response | None:
        """The answer to ``request``: an armed fault, else the source's real behaviour."""
        fault = self.faults.take(request.method, request.path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.drop:
                return None
            if (response := fault.response()) is not None:
                return response
        if self.coingecko_limit and request.path.startswith(COINGECKO_PREFIX + "/"):
            retry_after = self.coingecko_limit.check()
            if retry_after is not None:
                return Response.json(
                    coingecko.RATE_LIMIT_BODY, 429, **{"Retry-After": str(retry_after)}
                )
        handlers = ROUTES.get(request.path)
        if handlers is None:
            if request.method in ("GET", "HEAD"):
                response = rss_feed(request, self.dataset)
                if response is not None:
                    return response
            return Response.json({"error": "Not Found", "path": request.path}, 404)
        handler = handlers.get("GET" if request.method == "HEAD" else request.method)
        if handler is None:
            return Response.json({"error": "Method Not Allowed"}, 405, Allow=", ".join(handlers))
        try:
            return handler(request, self.dataset)
        except fmarket.BadRequest as exc:
            body = fmarket.envelope(None, status=400, message=str(exc), target=exc.target)
            return Response.json(body, 400)


# ---------------------------------------------------------------- command line


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    coingecko_rate_limit: int | None = None,
    verbose: bool = False,
    behaviours: dict[str, Any] | None = None,
) -> None:
    """Serve in the foreground until SIGINT or SIGTERM. `behaviours`: `ReplayDataset` attributes
    set before serving (`fmarket_page_cap`, `nav_history_days_before`, `fng_stamp_hour`)."""
    server = ReplayServer(host, port, coingecko_rate_limit=coingecko_rate_limit, verbose=verbose)
    for name, value in (behaviours or {}).items():
        setattr(server.dataset, name, value)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    print(f"Replay server on {server.url} (fmarket, VnExpress, CafeF, CoinGecko, alternative.me)")
    print("Point the workers at it with:")
    for name, value in server.env().items():
        print(f"{name}={value}")
    sys.stdout.flush()
    try:
        stop.wait()
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ingest replay",
        description="Serve the bundled recordings of the HTTP sources at their real paths.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument(
        "--coingecko-rate-limit",
        type=int,
        metavar="PER_MINUTE",
        help="answer 429 + Retry-After past this many CoinGecko calls a minute (like the free API)",
    )
    parser.add_argument(
        "--fmarket-page-cap",
        type=int,
        metavar="ROWS",
        help="apply at most this page size to the fund list, whatever pageSize asks",
    )
    parser.add_argument(
        "--nav-history-days-before",
        type=int,
        default=0,
        metavar="DAYS",
        help="get-nav-history also returns this many days before fromDate",
    )
    parser.add_argument(
        "--fng-stamp-hour",
        type=int,
        default=0,
        metavar="HOUR",
        help="stamp Fear & Greed values at this UTC hour (the API's documented example: 5)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    serve(
        args.host,
        args.port,
        coingecko_rate_limit=args.coingecko_rate_limit,
        verbose=args.verbose,
        behaviours={
            "fmarket_page_cap": args.fmarket_page_cap,
            "nav_history_days_before": args.nav_history_days_before,
            "fng_stamp_hour": args.fng_stamp_hour,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
