"""A local stand-in for FlareSolverr speaking its contract (`POST /v1`, `{"cmd":
"request.get", "url", "maxTimeout"}` → `{"status": "ok", "solution": {"url", "status",
"headers", "response", "cookies", "userAgent"}, ...}`), solving with a real `BrowserPool` as
FlareSolverr does with its own Chromium. Field names follow FlareSolverr's README."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ingestion_pipelines.browser.pool import BrowserPageError, BrowserPool

VERSION = "3.3.21"


class FlareSolverrStandIn:
    """Serves `POST /v1` on 127.0.0.1 (a random port); `url` is its base URL."""

    def __init__(self, pool: BrowserPool):
        self.pool = pool
        self.commands: list[dict] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                standin.commands.append(body)
                status, answer = standin.answer(self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def answer(self, path: str, command: dict) -> tuple[int, dict]:
        started = int(time.time() * 1000)
        if path != "/v1" or command.get("cmd") != "request.get":
            return 500, {
                "status": "error",
                "message": f"Request parameter 'cmd' = '{command.get('cmd')}' is invalid.",
            }
        try:
            page = self.pool.fetch(
                command["url"], challenge_timeout_s=command.get("maxTimeout", 60000) / 1000
            )
        except BrowserPageError as exc:
            return 500, {
                "status": "error",
                "message": f"Error: Error solving the challenge. {exc}",
                "startTimestamp": started,
                "endTimestamp": int(time.time() * 1000),
                "version": VERSION,
            }
        cookies = [
            {
                k: c.get(k)
                for k in (
                    "name",
                    "value",
                    "domain",
                    "path",
                    "expires",
                    "httpOnly",
                    "secure",
                    "sameSite",
                )
            }
            for c in page.cookies
        ]
        return 200, {
            "status": "ok",
            "message": "Challenge solved!",
            "solution": {
                "url": page.url,
                "status": page.status,
                "headers": {},
                "response": page.html,
                "cookies": cookies,
                "userAgent": page.user_agent,
            },
            "startTimestamp": started,
            "endTimestamp": int(time.time() * 1000),
            "version": VERSION,
        }

    def __enter__(self) -> FlareSolverrStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
