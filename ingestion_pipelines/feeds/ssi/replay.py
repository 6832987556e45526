"""A local server replaying the SSI iBoard realtime pushstream from the bundled recording.

Protocol, as recorded at ``wss://iboard-pushstream.ssi.com.vn/realtime`` (see
``data/ssi-iboard-session-2026-04-14.jsonl``, one ``{"t","dir","raw"}`` object a line):

- path ``/realtime``; the handshake is answered HTTP 403 unless the request carries a
  browser-like ``User-Agent`` (``Mozilla/5.0 ...``), as the real server does;
- the client subscribes with (text frame, exactly as recorded)::

      {"type":"sub","topic":"stockRealtimeBySymbolsAndBoards",
       "variables":{"symbols":["VCB","FPT","MBB"],"boardIds":["MAIN"]},
       "component":"priceTableEquities"}

  and gets the plain-text line ``Subscribed stockRealtimeBySymbolsAndBoards``;
- then board frames, ``|``-separated snapshots like
  ``MAIN|S#MBB|26550|32400|...|1776132899978|1776148328065`` (field 0 board, 1 ``S#<symbol>``,
  100 and 101 epoch-ms timestamps — 101 is the server time), only for subscribed
  (symbol, board) pairs;
- ``{"type":"unsub",...,"variables":{"symbols":["VCB"],"boardIds":["MAIN"]},...}`` is answered
  ``{"result":"complete","type":"unsub","topic":"stockRealtimeBySymbolsAndBoards",
  "variables":{"symbols":["VCB"],"boardIds":["MAIN"]}}`` and stops those symbols.

Replay: one market timeline for all clients, started by the first subscription after `start()`.
Frame k goes out ``(t_k - t_ack) * speed`` seconds after it started (``t`` = recorded capture
time, ``t_ack`` = the recorded acknowledgement; speed 1.0 = real timing, 0 = as fast as
possible). Clients joining later see only what follows; the timeline goes on while nobody is
connected, and after ``stop()``/``start()`` it resumes where it was (on the next subscription).
Frames of 97 fields (no stamps: ``recording_path("97-fields")``) and derivatives-board frames
(``recording_path("derivatives")``) replay the same way. With ``shift_to_now``, fields 100 and
101 (when present) are shifted by one offset per pass (never decreasing)
so that the frames look current; with ``loop``, the recording repeats forever, otherwise
``done`` is set after the last frame.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from ingestion_pipelines.replay.ws_server import (
    BackgroundWsServer,
    ClientConn,
    Outgoing,
    now_ms,
    text_response,
)

__all__ = [
    "BROWSER_USER_AGENT",
    "RECORDING_NAME",
    "VARIANT_RECORDINGS",
    "RecordedFrame",
    "SentMessage",
    "SsiRecording",
    "SsiServer",
    "recording_path",
    "shift_frame",
]

RECORDING_NAME = "ssi-iboard-session-2026-04-14.jsonl"
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
TIME_FIELDS = (100, 101)  # epoch-ms fields of a board frame; 101 is the server time


# Bundled variants of the board frames (see data/PROVENANCE.md), for `SsiServer(recording=...)`.
VARIANT_RECORDINGS = {
    "102-fields": RECORDING_NAME,
    "97-fields": "ssi-iboard-97-fields.jsonl",
    "derivatives": "ssi-iboard-derivatives.jsonl",
}


def recording_path(name: str = RECORDING_NAME) -> Path:
    """Path of a bundled recording (package data): a file name or a `VARIANT_RECORDINGS` key."""
    name = VARIANT_RECORDINGS.get(name, name)
    return Path(str(resources.files(__package__).joinpath("data", name)))


def shift_frame(raw: str, delta_ms: int) -> str:
    """`raw` with its epoch-ms fields (100, 101) moved by `delta_ms`; other bytes unchanged."""
    if not delta_ms:
        return raw
    fields = raw.split("|")
    for index in TIME_FIELDS:
        if index < len(fields) and fields[index].isdigit():
            fields[index] = str(int(fields[index]) + delta_ms)
    return "|".join(fields)


@dataclass(frozen=True)
class RecordedFrame:
    """One recorded board frame."""

    t: int  # capture time, epoch ms
    raw: str
    board: str  # field 0, e.g. "MAIN"
    symbol: str  # field 1 without "S#"


@dataclass(frozen=True)
class SsiRecording:
    """The parts of a recorded session the server replays."""

    subscribe_message: str  # first client "out" frame
    ack: str  # the plain-text acknowledgement that followed it
    unsubscribe_message: str | None
    unsubscribe_reply: str | None
    frames: tuple[RecordedFrame, ...]  # board frames, in recorded order
    t_ack: int  # capture time of the acknowledgement: timing starts there

    @classmethod
    def load(cls, path: str | Path | None = None) -> SsiRecording:
        """Read a recording (default: the bundled 102-field session)."""
        entries = []
        with open(path or recording_path(), encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    entries.append(json.loads(line))
        sub = unsub = unsub_reply = ack = None
        t_ack: int | None = None
        frames: list[RecordedFrame] = []
        for entry in entries:
            raw, direction = entry["raw"], entry["dir"]
            if direction == "out":
                kind = _message_type(raw)
                if kind == "sub" and sub is None:
                    sub = raw
                elif kind == "unsub" and unsub is None:
                    unsub = raw
            elif direction == "in":
                if "|" in raw and raw.split("|", 2)[1].startswith("S#"):
                    fields = raw.split("|", 2)
                    frames.append(RecordedFrame(int(entry["t"]), raw, fields[0], fields[1][2:]))
                elif raw.startswith("Subscribed ") and ack is None:
                    ack, t_ack = raw, int(entry["t"])
                elif unsub is not None and unsub_reply is None and raw.startswith("{"):
                    unsub_reply = raw
        if sub is None or ack is None or t_ack is None or not frames:
            raise ValueError(f"{path or RECORDING_NAME}: no subscribe/ack/frames found")
        return cls(sub, ack, unsub, unsub_reply, tuple(frames), t_ack)

    @property
    def symbols(self) -> list[str]:
        """The symbols present in the recording."""
        return list(dict.fromkeys(f.symbol for f in self.frames))

    @property
    def boards(self) -> list[str]:
        """The boards present in the recording."""
        return list(dict.fromkeys(f.board for f in self.frames))

    @property
    def span_ms(self) -> int:
        """Milliseconds from the acknowledgement to the last frame."""
        return self.frames[-1].t - self.t_ack


def _message_type(raw: str) -> str | None:
    try:
        msg = json.loads(raw)
    except ValueError:
        return None
    return msg.get("type") if isinstance(msg, dict) else None


@dataclass(frozen=True)
class SentMessage:
    """One message the server wrote to a client."""

    conn_id: int
    kind: str  # "ack" | "unsub_reply" | "frame"
    raw: str
    at: float  # time.time()


class _SsiConn(ClientConn):
    def __init__(self, conn_id: int, ws: ServerConnection) -> None:
        super().__init__(conn_id, ws)
        self.subs: dict[tuple[str, str], None] = {}  # (symbol, board), insertion-ordered

    def wants(self, frame: RecordedFrame) -> bool:
        return (frame.symbol, frame.board) in self.subs or (frame.symbol, "*") in self.subs

    def details(self) -> dict[str, Any]:
        return {"subscriptions": [list(k) for k in self.subs]}


class _SsiOut(Outgoing):
    __slots__ = ("server", "kind", "raw")

    def __init__(self, server: SsiServer, kind: str, raw: str) -> None:
        self.server = server
        self.kind = kind
        self.raw = raw

    def render(self) -> str:
        return self.raw

    def on_sent(self, conn: ClientConn) -> None:
        self.server._record_sent(SentMessage(conn.id, self.kind, self.raw, time.time()))


class SsiServer(BackgroundWsServer):
    """SSI iBoard pushstream replay at ``ws://HOST:PORT/realtime`` (see module doc).

    Args:
        host, port: where to listen (port 0: any free port; kept across `restart()`).
        speed: multiplier of the recorded delays (1.0 real time, 0.1 ten times faster,
            0 as fast as possible).
        loop: repeat the recording forever (else `done` is set after one pass).
        shift_to_now: move fields 100/101 so that the frames look current.
        recording: another recording file or a loaded `SsiRecording` (default: bundled).
        require_browser_ua: answer 403 to handshakes without a ``Mozilla/5.0`` User-Agent.
        ping_interval, pong_timeout, max_connection_age_s: as for every server (default off;
            the recording shows no server pings).
    """

    thread_name = "ssi-replay"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        speed: float = 1.0,
        loop: bool = False,
        shift_to_now: bool = False,
        recording: str | Path | SsiRecording | None = None,
        require_browser_ua: bool = True,
        ping_interval: float | None = None,
        pong_timeout: float | None = None,
        max_connection_age_s: float | None = None,
    ) -> None:
        super().__init__(
            host,
            port,
            ping_interval=ping_interval,
            pong_timeout=pong_timeout,
            max_connection_age_s=max_connection_age_s,
        )
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self.recording = (
            recording if isinstance(recording, SsiRecording) else SsiRecording.load(recording)
        )
        self.speed = float(speed)
        self.loop = loop
        self.shift_to_now = shift_to_now
        self.require_browser_ua = require_browser_ua
        self.done = threading.Event()
        self._sent: list[SentMessage] = []
        self._pos = 0  # next frame of the current pass
        self._delta = 0  # shift of the current pass (ms)
        self._passes_completed = 0
        self._frames_emitted = 0
        self._subscribed: asyncio.Event | None = None

    # -- state for tests -------------------------------------------------------------------

    @property
    def symbols(self) -> list[str]:
        """The symbols of the replayed recording."""
        return self.recording.symbols

    @property
    def subscribe_message(self) -> str:
        """The recorded subscribe message (send it as is to get the recorded symbols)."""
        return self.recording.subscribe_message

    @property
    def realtime_url(self) -> str:
        """The pushstream URL clients connect to."""
        return f"{self.url}/realtime"

    @property
    def frames_sent(self) -> list[str]:
        """Board frames written to clients (all connections, in send order)."""
        with self._cond:
            return [m.raw for m in self._sent if m.kind == "frame"]

    def frames_sent_to(self, conn_id: int) -> list[str]:
        """Board frames written to connection `conn_id`, in send order."""
        with self._cond:
            return [m.raw for m in self._sent if m.kind == "frame" and m.conn_id == conn_id]

    @property
    def sent(self) -> list[SentMessage]:
        """Everything written to clients: acks, unsubscribe replies and frames."""
        with self._cond:
            return list(self._sent)

    @property
    def frames_emitted(self) -> int:
        """Frames the timeline has played (sent to whoever was subscribed, maybe nobody)."""
        with self._cond:
            return self._frames_emitted

    @property
    def passes_completed(self) -> int:
        """How many times the timeline played to its end."""
        with self._cond:
            return self._passes_completed

    def wait_frames_sent(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until `n` board frames were written to clients; False on timeout."""
        return self.wait_for(lambda: sum(1 for m in self._sent if m.kind == "frame") >= n, timeout)

    # -- internals -------------------------------------------------------------------------

    def _record_sent(self, message: SentMessage) -> None:
        with self._cond:
            self._sent.append(message)
            self._cond.notify_all()

    def _make_conn(self, conn_id: int, ws: ServerConnection) -> ClientConn:
        return _SsiConn(conn_id, ws)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path.rstrip("/") != "/realtime":
            return text_response(404, "Not Found\n")
        if self.require_browser_ua and not _browser_like(request.headers.get("User-Agent", "")):
            return text_response(
                403,
                "<html><head><title>403 Forbidden</title></head><body>"
                "<center><h1>403 Forbidden</h1></center></body></html>\n",
                "text/html",
            )
        return None

    async def _on_started(self) -> None:
        self._subscribed = asyncio.Event()
        self._spawn(self._replay())

    async def _on_message(self, conn: ClientConn, message: str | bytes) -> None:
        assert isinstance(conn, _SsiConn)
        if isinstance(message, bytes):
            return
        try:
            msg = json.loads(message)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        kind, topic = msg.get("type"), msg.get("topic")
        variables = msg.get("variables") if isinstance(msg.get("variables"), dict) else {}
        symbols = [s for s in variables.get("symbols") or [] if isinstance(s, str)]
        boards = [b for b in variables.get("boardIds") or [] if isinstance(b, str)] or ["*"]
        if kind == "sub":
            conn.enqueue(_SsiOut(self, "ack", f"Subscribed {topic}"))
            if topic == "stockRealtimeBySymbolsAndBoards":
                for symbol in symbols:
                    for board in boards:
                        conn.subs[(symbol, board)] = None
            if self._subscribed is not None:
                self._subscribed.set()
            self._notify()
        elif kind == "unsub":
            for symbol in symbols:
                for board in boards:
                    conn.subs.pop((symbol, board), None)
            reply = {"result": "complete", "type": "unsub", "topic": topic, "variables": variables}
            conn.enqueue(
                _SsiOut(
                    self,
                    "unsub_reply",
                    json.dumps(reply, separators=(",", ":"), ensure_ascii=False),
                )
            )
            self._notify()

    async def _replay(self) -> None:
        assert self._subscribed is not None
        await self._subscribed.wait()
        loop = asyncio.get_running_loop()
        frames = self.recording.frames
        if self._pos >= len(frames):  # a finished one-pass replay, restarted
            return
        t_ack = self.recording.t_ack
        span = self.recording.span_ms
        scale = self.speed / 1000.0
        # resume at self._pos: that frame is due now
        base = loop.time() - (frames[self._pos].t - t_ack) * scale if self._pos else loop.time()
        if self.shift_to_now:
            target = now_ms() - (frames[self._pos].t if self._pos else t_ack)
            self._delta = max(self._delta, target)
        while True:
            while self._pos < len(frames):
                frame = frames[self._pos]
                if scale:
                    wait = base + (frame.t - t_ack) * scale - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                elif self._pos % 32 == 0:
                    await asyncio.sleep(0)
                raw = shift_frame(frame.raw, self._delta) if self.shift_to_now else frame.raw
                for conn in list(self._conns.values()):
                    if not conn.closing and conn.wants(frame):  # type: ignore[attr-defined]
                        conn.enqueue(_SsiOut(self, "frame", raw))
                with self._cond:
                    self._pos += 1
                    self._frames_emitted += 1
                    self._cond.notify_all()
            with self._cond:
                self._passes_completed += 1
                self._cond.notify_all()
            if not self.loop:
                self.done.set()
                return
            self._pos = 0
            base = loop.time()
            if self.shift_to_now:
                self._delta = max(now_ms() - t_ack, self._delta + span + 1)
            await asyncio.sleep(0)


def _browser_like(user_agent: str) -> bool:
    return user_agent.startswith("Mozilla/5.0")
