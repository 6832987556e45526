"""The websocket connection's helpers for the feed engine: proxy options and a read-ahead buffer
that lets the engine take whole frames without websocket-client's per-frame system calls."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import websocket

from ingestion_pipelines.core.redaction import register_secret


def proxy_options(proxy: str | None) -> dict[str, Any]:
    """websocket-client's proxy arguments for a `proxy` URL (http:// or socks5://, with or
    without user:password); the password is registered as a secret."""
    if not proxy:
        return {}
    parts = urlsplit(proxy)
    options: dict[str, Any] = {
        "http_proxy_host": parts.hostname,
        "http_proxy_port": parts.port or (1080 if parts.scheme.startswith("socks") else 8080),
        "proxy_type": parts.scheme
        if parts.scheme in ("socks4", "socks4a", "socks5", "socks5h")
        else "http",
    }
    if parts.username:
        register_secret(unquote(parts.password or ""))
        options["http_proxy_auth"] = (unquote(parts.username), unquote(parts.password or ""))
    return options


POLL_S = 0.25  # how often a blocked read wakes to check stop, silence and age
_READ_CHUNK = 64 * 1024


class BufferedRecv:
    """A read-ahead buffer under websocket-client's frame parser.

    The parser asks for exact sizes (the 2-byte header, the length, the payload), each a poll and
    a read system call on a socket with a timeout: three or more per small frame, the largest
    cost of receiving at high rates. This reads what the socket holds (up to 64 KiB) at once and
    serves the parser from it; the parser still gets at most what it asked for."""

    __slots__ = ("_buf", "_pos", "_raw")

    def __init__(self, raw):
        self._raw = raw
        self._buf = b""
        self._pos = 0

    def __call__(self, size: int) -> bytes:
        """At most `size` bytes, from the buffer when it holds any, else from one socket read."""
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            buf = self._buf = self._raw(max(size, _READ_CHUNK))
            pos = 0
        end = min(pos + size, len(buf))
        self._pos = end
        return buf[pos:end]

    def take_frame(self) -> tuple[int, bytes] | None:
        """The next frame straight from the buffer when it is a complete, final, unmasked text
        or binary frame without extensions (the usual case); None leaves everything else —
        control frames, fragments, an incomplete or very large frame, an empty buffer — to the
        library, which reads it through this buffer."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 2:
            return None
        first, second = buf[pos], buf[pos + 1]
        if first & 0xF0 != 0x80 or second & 0x80:  # not FIN, RSV bits set, or masked
            return None
        opcode = first & 0x0F
        if opcode != 1 and opcode != 2:
            return None
        length, start = second & 0x7F, pos + 2
        if length == 126:
            length, start = int.from_bytes(buf[pos + 2 : pos + 4], "big"), pos + 4
        elif length == 127:
            return None
        end = start + length
        if end > len(buf):
            return None
        self._pos = end
        return opcode, buf[start:end]


def library_idle(ws: websocket.WebSocket):
    """A check that websocket-client holds no part of a frame or fragmented message (then the
    next frame may be taken from the buffer directly)."""
    frames, fragments = getattr(ws, "frame_buffer", None), getattr(ws, "cont_frame", None)
    known = ("header", "recv_buffer", "recv")
    if not all(hasattr(frames, a) for a in known) or not hasattr(fragments, "recving_frames"):
        return lambda: False  # another websocket-client layout: every frame through the library

    def idle() -> bool:
        return frames.header is None and not frames.recv_buffer and fragments.recving_frames is None

    return idle
