"""A local stand-in for Bybit's v5 Spot public websocket (`/v5/public/spot`), serving the
captured Spot `publicTrade` pushes of `data/bybit-spot-trade-frames.jsonl` verbatim.

- `{"op":"subscribe","args":["publicTrade.BTCUSDT",..]}` is acknowledged as the documentation's
  Spot example (`{"success":true,"ret_msg":"subscribe","conn_id":..,"op":"subscribe"}`), then
  the captured pushes of those topics follow in file order;
- `{"op":"ping"}` is answered with the documented Spot pong.

Only the captured Spot frames are served (the documentation's linear example carries a UUID
trade id, a derivatives shape the Spot feed refuses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from ingestion_pipelines.replay.recorded import RecordedFramesServer

FRAMES = Path(__file__).parent / "data" / "bybit-spot-trade-frames.jsonl"
_CAPTURED = ("btcusdt-2025-10-27", "btcusdt-2026-09-13")


def recorded_frames(path: Path = FRAMES) -> list[tuple[str, str]]:
    """(topic, raw frame) of the captured Spot trade pushes, in file order."""
    frames = []
    for line in path.read_text().splitlines():
        record = orjson.loads(line)
        if record["id"] in _CAPTURED:
            frames.append((orjson.loads(record["raw"])["topic"], record["raw"]))
    return frames


def _documented(record_id: str) -> str:
    for line in FRAMES.read_text().splitlines():
        record = orjson.loads(line)
        if record["id"] == record_id:
            return record["raw"]
    raise KeyError(record_id)


class BybitServer(RecordedFramesServer):
    """Bybit's Spot public websocket, from the captures (see module doc)."""

    path = "/v5/public/spot"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> None:
        super().__init__(recorded_frames(), host, port, **kwargs)
        self._ack = _documented("docs-subscribe-ack-spot")
        self._pong = _documented("docs-pong-spot")

    def keepalive_reply(self, message: str) -> str | None:
        """The answer to a keep-alive (None: not one)."""
        try:
            request = orjson.loads(message)
        except orjson.JSONDecodeError:
            return None
        return self._pong if isinstance(request, dict) and request.get("op") == "ping" else None

    def subscribe(self, message: str) -> tuple[list[str], list[str]] | None:
        """The instruments a subscribe request asks for, and the acknowledgements."""
        try:
            request = orjson.loads(message)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(request, dict) or request.get("op") != "subscribe":
            return None
        return [str(topic) for topic in request.get("args", [])], [self._ack]
