"""A websocket-client (the library the product uses) connection read by a background thread.

    reader = WsReader(url)
    assert reader.wait_for(lambda: len(reader.texts) >= 3)
    reader.close()

Pings are answered by websocket-client itself while the thread reads (as in the product);
`NoPongWebSocket` is a client that never answers them.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from typing import Any

import websocket
from websocket import ABNF


class NoPongWebSocket(websocket.WebSocket):
    """A client that reads frames but never answers pings."""

    def pong(self, payload: str | bytes = "") -> None:
        return None


class WsReader:
    def __init__(
        self,
        url: str,
        *,
        header: dict[str, str] | None = None,
        class_: type[websocket.WebSocket] = websocket.WebSocket,
        timeout: float = 5.0,
    ) -> None:
        self.ws = websocket.create_connection(url, header=header, class_=class_, timeout=timeout)
        self.ws.settimeout(None)  # the reader blocks; close() unblocks it
        self.texts: list[str] = []
        self.binaries: list[bytes] = []
        self.pings = 0
        self.close_code: int | None = None  # set when a close frame arrived
        self.error: BaseException | None = None  # set when the connection broke without one
        self.ended = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                opcode, frame = self.ws.recv_data_frame(True)
                with self._cond:
                    if opcode == ABNF.OPCODE_TEXT:
                        self.texts.append(frame.data.decode("utf-8"))
                    elif opcode == ABNF.OPCODE_BINARY:
                        self.binaries.append(bytes(frame.data))
                    elif opcode == ABNF.OPCODE_PING:
                        self.pings += 1
                    elif opcode == ABNF.OPCODE_CLOSE:
                        data = frame.data or b""
                        self.close_code = (
                            int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
                        )
                        self.ws.shutdown()  # close reply already sent: end the TCP connection
                        return
                    self._cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - recorded for the test
            self.error = exc
        finally:
            with self._cond:
                self.ended.set()
                self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def wait_texts(self, n: int, timeout: float = 10.0) -> bool:
        return self.wait_for(lambda: len(self.texts) >= n, timeout)

    def wait_ended(self, timeout: float = 10.0) -> bool:
        return self.ended.wait(timeout)

    def json(self) -> list[Any]:
        with self._cond:
            return [json.loads(t) for t in self.texts]

    def send(self, text: str) -> None:
        self.ws.send(text)

    def send_json(self, obj: Any) -> None:
        self.ws.send(json.dumps(obj))

    def close(self) -> None:
        """Close handshake (the reader sees the server's close frame), else abort; then shut."""
        if not self.ended.is_set():
            with contextlib.suppress(Exception):  # already broken
                self.ws.send_close()
            if not self.ended.wait(2):
                self.ws.abort()
            self.ended.wait(5)
        with contextlib.suppress(Exception):
            self.ws.shutdown()
