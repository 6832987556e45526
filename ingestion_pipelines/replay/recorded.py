"""A websocket server that replays recorded frames to the clients that subscribe to them: the
base of the OKX and Bybit stand-ins (`feeds/okx/replay.py`, `feeds/bybit/replay.py`).

A subclass says which path it serves, how it answers a subscribe request (which recorded keys it
subscribes to, and the acknowledgement), and how it answers the source's keep-alive. Every
connection that subscribes to a key gets the recorded frames of that key verbatim, in recording
order (a client that reconnects and subscribes again gets them again: what a live source's
re-sent trades look like). `hold_back(n)` leaves out frames (a gap the client must notice); the
frames' contents stay what was recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from ingestion_pipelines.replay.ws_connection import RawItem
from ingestion_pipelines.replay.ws_server import BackgroundWsServer, ClientConn, text_response


class RecordedFramesServer(BackgroundWsServer):
    """Serve `frames` ((key, raw frame) in recording order) to the clients subscribing to them."""

    path = "/"

    def __init__(
        self,
        frames: Iterable[tuple[str, str]],
        host: str = "127.0.0.1",
        port: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(host, port, **kwargs)
        self.frames = list(frames)
        self.held_back: set[int] = set()  # indexes of `frames` not sent
        self.keepalives = 0

    @property
    def keys(self) -> list[str]:
        """The recorded keys (instruments), in the order they first appear."""
        return list(dict.fromkeys(key for key, _raw in self.frames))

    def hold_back(self, indexes: Iterable[int]) -> None:
        """Never send these frames (by index in `frames`)."""
        self.held_back.update(indexes)

    # ---- subclasses ----------------------------------------------------------------------------
    def keepalive_reply(self, message: str) -> str | None:
        """The answer to a keep-alive message (None: not one)."""
        return None

    def subscribe(self, message: str) -> tuple[list[str], list[str]] | None:
        """(keys subscribed to, replies) for a subscribe request (None: not one)."""
        return None

    def rest(self, path: str, query: str) -> Response | None:
        """An HTTP answer on the same port (None: 404)."""
        return None

    # ---- server hooks --------------------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path.rstrip("/") == self.path.rstrip("/"):
            return None
        answer = self.rest(parts.path, parts.query)
        return answer if answer is not None else text_response(404, "Not Found\n")

    async def _on_message(self, conn: ClientConn, message: str | bytes) -> None:
        text = message.decode() if isinstance(message, bytes) else message
        pong = self.keepalive_reply(text)
        if pong is not None:
            with self._cond:
                self.keepalives += 1
            conn.enqueue(RawItem(pong, True))
            return
        subscribed = self.subscribe(text)
        if subscribed is None:
            return
        keys, replies = subscribed
        for reply in replies:
            conn.enqueue(RawItem(reply, True))
        wanted = set(keys)
        for index, (key, raw) in enumerate(self.frames):
            if key in wanted and index not in self.held_back:
                conn.enqueue(RawItem(raw, True))
