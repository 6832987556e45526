"""A real local HTTP origin with programmable replies, and a tiny forwarding HTTP proxy.

Both are stdlib ``ThreadingHTTPServer``s on 127.0.0.1 (port 0) in a background thread.

    with HttpOrigin() as origin:
        origin.set("/flaky", Reply(503), Reply(200, body=b"ok"))   # the last reply repeats
        url = origin.url("/flaky")
        ...
        origin.requests_for("/flaky")  # [RequestRecord(...), ...] with monotonic timestamps
"""

from __future__ import annotations

import base64
import http.client
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

__all__ = [
    "ForwardingProxy",
    "HttpOrigin",
    "Reply",
    "RequestRecord",
    "conditional_handler",
]


@dataclass
class Reply:
    """What the origin answers to one request."""

    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # sleep before answering
    send_content_length: bool = True  # False: no Content-Length, body ends at connection close
    drop: bool = False  # close the connection without answering

    def body_bytes(self) -> bytes:
        return self.body.encode() if isinstance(self.body, str) else self.body


@dataclass
class RequestRecord:
    method: str
    path: str  # path with query string
    headers: dict[str, str]  # header names lower-cased
    body: bytes
    at: float  # time.monotonic() when the request line was read
    wall: float  # time.time() at the same moment

    @property
    def route(self) -> str:
        return urlsplit(self.path).path


Handler = Callable[[RequestRecord], Reply]


def conditional_handler(
    body: bytes | str, *, etag: str | None = None, last_modified: str | None = None
) -> Handler:
    """A resource answering 304 when the request's validators match, else 200 with them."""

    def handle(request: RequestRecord) -> Reply:
        if etag and request.headers.get("if-none-match") == etag:
            return Reply(304, headers={"ETag": etag})
        if last_modified and not etag and request.headers.get("if-modified-since") == last_modified:
            return Reply(304, headers={"Last-Modified": last_modified})
        headers = {}
        if etag:
            headers["ETag"] = etag
        if last_modified:
            headers["Last-Modified"] = last_modified
        return Reply(200, body=body, headers=headers)

    return handle


class _BackgroundServer:
    def __init__(self, handler_class: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


class _OriginHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOrigin/1.0"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _handle(self) -> None:
        origin: HttpOrigin = self.server.owner  # type: ignore[attr-defined]
        record = RequestRecord(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=b"",
            at=time.monotonic(),
            wall=time.time(),
        )
        record.body = _read_body(self)
        reply = origin._next_reply(record)
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.drop:
            self.close_connection = True
            return
        body = reply.body_bytes()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.status in (204, 304):
            self.send_header("Content-Length", "0")
            body = b""
        elif reply.send_content_length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if body and self.command != "HEAD":
            try:
                for start in range(0, len(body), 65536):
                    self.wfile.write(body[start : start + 65536])
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


class HttpOrigin(_BackgroundServer):
    """Programmable origin: per path, a sequence of replies (the last repeats) or a handler."""

    def __init__(self) -> None:
        super().__init__(_OriginHandler)
        self._lock = threading.Lock()
        self._routes: dict[str, list[Reply] | Handler] = {}
        self._served: dict[str, int] = {}
        self.requests: list[RequestRecord] = []

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def set(self, path: str, *replies: Reply) -> None:
        """Answer ``path`` with these replies in order; the last one repeats."""
        if not replies:
            raise ValueError("at least one reply")
        with self._lock:
            self._routes[path] = list(replies)
            self._served[path] = 0

    def set_handler(self, path: str, handler: Handler) -> None:
        with self._lock:
            self._routes[path] = handler

    def requests_for(self, path: str) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.requests if r.route == path]

    def _next_reply(self, record: RequestRecord) -> Reply:
        with self._lock:
            self.requests.append(record)
            route = self._routes.get(record.route)
            if route is None:
                return Reply(404, body=b"not found")
            if callable(route):
                handler = route
            else:
                index = min(self._served[record.route], len(route) - 1)
                self._served[record.route] += 1
                return route[index]
        return handler(record)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeProxy/1.0"
    _HOP_BY_HOP = {
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        proxy: ForwardingProxy = self.server.owner  # type: ignore[attr-defined]
        body = _read_body(self)
        auth = self.headers.get("Proxy-Authorization")
        with proxy._lock:
            proxy.seen_auth.append(auth)
        if auth != proxy.expected_auth:
            with proxy._lock:
                proxy.rejected += 1
            self._reply(
                407,
                b"proxy authentication required",
                [("Proxy-Authenticate", 'Basic realm="fake"')],
            )
            return
        target = urlsplit(self.path)
        if target.scheme != "http" or not target.hostname:
            self._reply(400, b"only absolute http:// URLs are proxied")
            return
        path = target.path or "/"
        if target.query:
            path = f"{path}?{target.query}"
        headers = {k: v for k, v in self.headers.items() if k.lower() not in self._HOP_BY_HOP}
        connection = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=30)
        try:
            connection.request(self.command, path, body=body or None, headers=headers)
            upstream = connection.getresponse()
            payload = upstream.read()
            forwarded = [
                (k, v)
                for k, v in upstream.getheaders()
                if k.lower() not in self._HOP_BY_HOP and k.lower() != "content-length"
            ]
            with proxy._lock:
                proxy.forwarded.append(self.path)
            self._reply(upstream.status, payload, forwarded + [("Via", "1.1 fake-proxy")])
        except OSError as exc:
            self._reply(502, f"upstream error: {exc}".encode())
        finally:
            connection.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


class ForwardingProxy(_BackgroundServer):
    """Plain-HTTP forwarding proxy (no CONNECT) requiring Basic ``Proxy-Authorization``."""

    def __init__(self, username: str, password: str) -> None:
        super().__init__(_ProxyHandler)
        self.username = username
        self.password = password
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.expected_auth = f"Basic {token}"
        self._lock = threading.Lock()
        self.seen_auth: list[str | None] = []
        self.forwarded: list[str] = []
        self.rejected = 0

    def proxy_url(self, username: str | None = None, password: str | None = None) -> str:
        user = self.username if username is None else username
        secret = self.password if password is None else password
        return f"http://{user}:{secret}@127.0.0.1:{self.port}"
