"""A small forward proxy for tests: CONNECT tunnels (websockets) and absolute-URL requests
(plain HTTP through a proxy), with Basic proxy authentication. Records what it forwarded."""

from __future__ import annotations

import base64
import select
import socket
import threading
from urllib.parse import urlsplit


class ConnectProxy:
    def __init__(self, user: str, password: str):
        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.tunnels: list[str] = []
        self.requests: list[str] = []
        self.refused = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            header_bytes, rest = head.split(b"\r\n\r\n", 1)
            lines = header_bytes.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            if headers.get("Proxy-Authorization") != self.expected:
                self.refused += 1
                client.sendall(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
                )
                return
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                upstream = socket.create_connection((host, int(port)))
                self.tunnels.append(target)
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
                self._pipe(client, upstream)
                return
            parts = urlsplit(target)
            upstream = socket.create_connection((parts.hostname, parts.port or 80))
            self.requests.append(target)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            kept = [
                f"{k}: {v}"
                for k, v in headers.items()
                if k.lower() not in ("proxy-authorization", "proxy-connection", "connection")
            ]
            request = "\r\n".join([f"{method} {path} HTTP/1.1", *kept, "Connection: close", "", ""])
            upstream.sendall(request.encode("latin-1") + rest)
            self._pipe(client, upstream)

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        with b:
            sockets = [a, b]
            while not self._stop.is_set():
                readable, _, _ = select.select(sockets, [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)
