"""A local stand-in for OKX's public websocket (`/ws/v5/business`) and trade history REST, serving
the recorded session (`data/okx-trades-session-2022-05-13.jsonl`) verbatim.

- `{"op":"subscribe","args":[{"channel":"trades-all","instId":..}]}` is acknowledged per argument
  as OKX documents (`{"event":"subscribe","arg":{..},"connId":..}`), then the recorded trade
  pushes of those instruments follow in recording order (their `trades` channel name kept: in
  2022 that channel pushed one trade a message, the shape `trades-all` pushes today);
- the text `ping` is answered `pong`;
- `GET /api/v5/market/history-trades?instId=&type=1&after=&limit=` answers from the recorded
  trades (ids older than `after`, newest first, at most 100), in the shape of the documented
  example (`data/okx-history-trades-example.json`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
from websockets.http11 import Response

from ingestion_pipelines.replay.recorded import RecordedFramesServer
from ingestion_pipelines.replay.ws_server import json_response

RECORDING = Path(__file__).parent / "data" / "okx-trades-session-2022-05-13.jsonl"


def recorded_frames(path: Path = RECORDING) -> list[tuple[str, str]]:
    """(instId, raw frame) of every recorded trade push, in order."""
    frames = []
    for line in path.read_text().splitlines():
        record = orjson.loads(line)
        if record.get("dir") != "in":
            continue
        message = orjson.loads(record["raw"])
        if "data" in message:
            frames.append((message["arg"]["instId"], record["raw"]))
    return frames


class OkxServer(RecordedFramesServer):
    """OKX's business websocket and trade history, from the recording (see module doc)."""

    path = "/ws/v5/business"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> None:
        super().__init__(recorded_frames(), host, port, **kwargs)
        self.trades: dict[str, list[dict[str, Any]]] = {}
        for _key, raw in self.frames:
            for trade in orjson.loads(raw)["data"]:
                self.trades.setdefault(trade["instId"], []).append(trade)

    @property
    def rest_url(self) -> str:
        """Where the REST history is served (`rest_base_url`)."""
        return self.http_url

    def keepalive_reply(self, message: str) -> str | None:
        """The answer to a keep-alive (None: not one)."""
        return "pong" if message == "ping" else None

    def subscribe(self, message: str) -> tuple[list[str], list[str]] | None:
        """The instruments a subscribe request asks for, and the acknowledgements."""
        try:
            request = orjson.loads(message)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(request, dict) or request.get("op") != "subscribe":
            return None
        args = [a for a in request.get("args", []) if a.get("channel") == "trades-all"]
        replies = [
            orjson.dumps({"event": "subscribe", "arg": arg, "connId": "a4d3ae55"}).decode()
            for arg in args
        ]
        return [arg["instId"] for arg in args], replies

    def rest(self, path: str, query: str) -> Response | None:
        """The trade history page asked for (None: another path)."""
        if path.rstrip("/") != "/api/v5/market/history-trades":
            return None
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        after = int(params.get("after", 2**63))
        limit = min(int(params.get("limit", 100)), 100)
        older = [
            t for t in self.trades.get(params.get("instId", ""), []) if int(t["tradeId"]) < after
        ]
        page = sorted(older, key=lambda t: int(t["tradeId"]), reverse=True)[:limit]
        return json_response(200, {"code": "0", "msg": "", "data": page})
