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
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.client import responses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from ingestion_pipelines.replay import routes
from ingestion_pipelines.replay.dataset import ReplayDataset
from ingestion_pipelines.replay.routes import (
    JSON,
    SETTING_PATHS,
    SETTING_VALUES,
    ReplayRequest,
    Response,
)

DEFAULT_PORT = 8765
routes.load_replays()
WORKER_BASE_PATHS = routes.WORKER_BASE_PATHS  # filled by the families' replay modules
ROUTES = routes.ROUTES


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
        """The answer this fault gives (None: the normal answer, maybe late)."""
        if self.status is None and self.body is None:
            return None
        status = self.status or 200
        body = self.body
        if body is None:
            throttled = routes.throttle_body_for(self.path) if status == 429 else None
            if throttled is not None:
                body = orjson.dumps(throttled)
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
        """Arm a fault for `path`; `body` may be bytes, text or JSON-able."""
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
        """The first armed fault for the request, consumed once (None: none armed)."""
        with self._lock:
            for fault in self._faults:
                if fault.path == path and fault.method in (None, method):
                    fault.hits += 1
                    if fault.times is not None and fault.hits >= fault.times:
                        self._faults.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def __len__(self) -> int:
        return len(self._faults)


# ---------------------------------------------------------------- server


MAX_BODY_BYTES = 1_000_000  # the sources' requests are small JSON documents
PLAIN = {"Content-Type": "text/plain; charset=utf-8"}


class _BadBody(Exception):
    """A request body refused before it is read: its status and why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


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
        try:
            body = self._read_body()
        except _BadBody as refused:  # answered and closed: the rest of the body is unread
            self.close_connection = True
            self._answer(Response(refused.status, f"{refused}\n".encode(), dict(PLAIN)))
            return
        request = ReplayRequest(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
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
        except Exception as exc:  # a bug here must still answer; the traceback stays here
            traceback.print_exc()
            text = f"replay server error ({type(exc).__name__}); see the server's log\n"
            response = Response(500, text.encode(), dict(PLAIN))
        finally:
            with replay._requests_lock:
                replay.in_flight -= 1
        if response is None:  # a dropped connection
            self.close_connection = True
            return
        self._answer(response)

    def _answer(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status != 304:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and response.status != 304:
            self.wfile.write(response.body)

    def _read_body(self) -> bytes:
        """The request body, at most MAX_BODY_BYTES; `_BadBody` (400/413) otherwise."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        raw = (self.headers.get("Content-Length") or "0").strip()
        if not raw.isdigit():  # "-1", "1e3", " 12 13": never read as a length
            raise _BadBody(400, f"bad Content-Length {raw[:40]!r}")
        length = int(raw)
        if length > MAX_BODY_BYTES:
            raise _BadBody(413, f"body of {length} bytes: at most {MAX_BODY_BYTES}")
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            head = self.rfile.readline(100).split(b";")[0].strip() or b"0"
            try:
                size = int(head, 16)
            except ValueError:
                raise _BadBody(400, f"bad chunk size {head[:20]!r}") from None
            if size < 0:
                raise _BadBody(400, f"bad chunk size {head[:20]!r}")
            if size == 0:
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise _BadBody(413, f"chunked body over {MAX_BODY_BYTES} bytes")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(100)
        while self.rfile.readline(1000) not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(chunks)

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
        rate_limits: dict[str, int] | None = None,
        verbose: bool = False,
    ) -> None:
        self.dataset = dataset or ReplayDataset()
        self.faults = FaultRegistry()
        self.requests: list[ReplayRequest] = []
        self.verbose = verbose
        budgets = {"coingecko": coingecko_rate_limit, **(rate_limits or {})}
        self.rate_limits = {
            routes.RATE_LIMITED[name]: routes.RateLimit(per_minute)
            for name, per_minute in budgets.items()
            if per_minute
        }
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
        """The address the server listens on."""
        return self._httpd.server_address[0]

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The server's root URL."""
        return f"http://{self.host}:{self.port}"

    def base_urls(self) -> dict[str, str]:
        """worker id -> the ``base_url`` that points the worker at this server."""
        return {worker: self.url + suffix for worker, suffix in WORKER_BASE_PATHS.items()}

    def env(self) -> dict[str, str]:
        """The ``INGEST_<WORKER>__BASE_URL`` variables for every worker served here."""
        env = {f"INGEST_{w.upper()}__BASE_URL": url for w, url in self.base_urls().items()}
        paths = {name: self.url + path for name, path in SETTING_PATHS.items()}
        return env | paths | SETTING_VALUES

    def requests_for(self, path: str, method: str | None = None) -> list[ReplayRequest]:
        """The requests received at `path` (and `method`, if given)."""
        with self._requests_lock:
            return [r for r in self.requests if r.path == path and method in (None, r.method)]

    # ------------------------------------------------------------ life cycle

    def start(self) -> ReplayServer:
        """Serve in a background thread; returns the server."""
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
        """Stop serving and close the socket."""
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
        return self._throttled(request) or self._route(request)

    def _throttled(self, request: ReplayRequest) -> Response | None:
        """A 429 when the request is past a per-minute budget of its path, else None."""
        for prefix, limit in self.rate_limits.items():
            if request.path.startswith(prefix) and (retry_after := limit.check()) is not None:
                body = routes.throttle_body_for(request.path) or {"error": "Too Many Requests"}
                return Response.json(body, 429, **{"Retry-After": str(retry_after)})
        return None

    def _route(self, request: ReplayRequest) -> Response:
        """The answer of the handler registered for the request's path and method."""
        handlers = ROUTES.get(request.path)
        if handlers is None:
            if request.method in ("GET", "HEAD"):
                for fallback in routes.FALLBACKS:
                    if (response := fallback(request, self.dataset)) is not None:
                        return response
            return Response.json({"error": "Not Found", "path": request.path}, 404)
        handler = handlers.get("GET" if request.method == "HEAD" else request.method)
        if handler is None:
            return Response.json({"error": "Method Not Allowed"}, 405, Allow=", ".join(handlers))
        try:
            return handler(request, self.dataset)
        except tuple(routes.ERROR_ANSWERS) as exc:
            return next(a(exc) for t, a in routes.ERROR_ANSWERS.items() if isinstance(exc, t))


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
    """`ingest replay` for the HTTP server alone: parse arguments and serve."""
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
