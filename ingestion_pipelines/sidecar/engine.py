"""The feed engine: one thread per websocket connection, the same for every feed.

It connects with the feed's headers (and a browser User-Agent), sends the feed's subscribe
messages after every (re)connect, answers server pings (websocket-client does it inside
`recv_data_frame`), hands each frame to `feed.parse`, and the rows to the writer. It reconnects on
close, error, silence longer than `silence_limit_s` (no frame at all, pings included), before the
feed's `max_connection_age_s`, and when the server announces a shutdown — with exponential backoff,
jitter and a cap for failures, at once for planned reconnects. A frame `parse` refuses goes to
`dead_letter` raw, with the reason, and the feed goes on; so does a frame bigger than the feed's
`max_frame_bytes` (checked before parsing; the dead letter keeps its head, length and SHA-256),
and each trade with a price or quantity that is not a finite positive number within the column's
range (one dead letter per record, the frame's other rows are kept).

For feeds with consecutive trade ids it tracks the last id per symbol (seeded from the database at
start) and hands every gap to the feed's `GapFiller`. A row is counted as seen only once the writer
accepted it; when the writer's queue stays full the engine disconnects, waits for room and
reconnects, and the trades it did not take are fetched back as a gap.

A feed may ask for an application-level keep-alive (`keepalive_message`, sent every
`keepalive_interval_s`: OKX's `ping`, Bybit's `{"op":"ping"}`), and a feed that keeps state across
frames declares `open_session` (order books, `sidecar/sessions.py`): the session parses the
frames, its REST documents are fetched beside the connection, its timers run between frames, and
it is told of every disconnection.
"""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, datetime
from typing import Any

import websocket
from loguru import logger
from sqlalchemy import func, select

from ingestion_pipelines.core import url_policy
from ingestion_pipelines.core.redaction import redact_url
from ingestion_pipelines.core.retry import Backoff
from ingestion_pipelines.feeds.protocol import BROWSER_USER_AGENT, Parsed, ParseError
from ingestion_pipelines.sidecar.connection import POLL_S, BufferedRecv, library_idle, proxy_options
from ingestion_pipelines.sidecar.gaps import FirstSeen, GapFiller, GapTracker
from ingestion_pipelines.sidecar.sessions import FeedSession
from ingestion_pipelines.sidecar.shards import worker_of
from ingestion_pipelines.sidecar.spool import Spool
from ingestion_pipelines.sidecar.writer import Writer
from ingestion_pipelines.storage.dead_letters import PAYLOAD_HEAD_BYTES, dead_letter_row
from ingestion_pipelines.storage.table_policy import TablePolicy, policy_of
from ingestion_pipelines.storage.tables import DATA_TABLES


class FeedEngine:
    """Runs one feed: the connection thread and its gap filler."""

    def __init__(
        self,
        feed_id: str,
        feed: Any,
        settings: Any,
        writer: Writer,
        *,
        control_writer: Writer | None = None,
        backoff: Backoff | None = None,
    ):
        self.feed_id = feed_id
        self.feed = feed
        self.settings = settings
        self.writer = writer
        self.control_writer = control_writer or writer
        self.backoff = backoff or Backoff()
        self.log = logger.bind(worker_id=worker_of(feed_id))  # feed_id may be a shard key
        self.max_connection_age_s: float | None = getattr(feed, "max_connection_age_s", None)
        self.policies = {p.table: p for p in getattr(feed, "policies", ())}
        # the table whose consecutive ids are tracked for gaps (a feed with consecutive ids)
        self.gap_policy = (
            next((p for p in self.policies.values() if p.gap_tracked), None)
            if getattr(feed, "consecutive_ids", False)
            else None
        )
        self.consecutive = self.gap_policy is not None
        self.tracker = GapTracker()
        # application-level keep-alive the server expects (text `ping`, `{"op":"ping"}`)
        self.keepalive_message: str | None = getattr(feed, "keepalive_message", None)
        self.keepalive_interval_s: float = getattr(feed, "keepalive_interval_s", 20.0)
        self.keepalives_sent = 0
        # a stateful feed (order books): its session reads the frames, asks for REST documents
        self.session = FeedSession(self, feed) if hasattr(feed, "open_session") else None
        self.first_seen = (
            FirstSeen(writer.spool(feed_id).folder.parent / f"{feed_id}.first_seen.json")
            if self.consecutive
            else None
        )
        self.filler = (
            GapFiller(feed_id, feed, lambda: self.settings, self._submit_filled)
            if self.consecutive
            else None
        )
        # live state, read by the state thread
        self.status = "starting"
        self.connected_since: datetime | None = None
        self.last_message_at: float | None = None
        self.messages = 0
        self.reconnects = 0
        self.dead_letters = 0
        self.last_error: str | None = None
        self._filled_checked: tuple[Any, list[dict[str, Any]]] = (None, [])
        self._stop = threading.Event()
        self._restart_reason: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"feed-{feed_id}", daemon=True)

    # ---- control -------------------------------------------------------------------------------
    def start(self) -> FeedEngine:
        """Start the engine's thread (and its gap filler)."""
        if self.filler is not None:
            self.filler.start()
        if self.session is not None:
            self.session.start()
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask the engine to close its connection and end; returns at once."""
        self._stop.set()

    def join(self, timeout_s: float = 2.0) -> None:
        """Wait up to `timeout_s` for the engine (and its gap filler) to end."""
        self._thread.join(timeout_s)
        if self.filler is not None:
            self.filler.stop(max(0.1, timeout_s / 2))
        if self.session is not None:
            self.session.stop(max(0.1, timeout_s / 2))
        self.status = "stopped"

    def stop(self, timeout_s: float = 2.0) -> None:
        """Request a stop and wait for it."""
        self.request_stop()
        self.join(timeout_s)

    @property
    def alive(self) -> bool:
        """Whether the engine's thread still runs."""
        return self._thread.is_alive()

    def reconfigure(self, settings: Any, reason: str) -> None:
        """New settings (e.g. symbols): applied by reconnecting at once."""
        self.settings = settings
        self._restart_reason = reason

    # ---- start-up ------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Spool first, then where to resume from (the last committed trade id per symbol)."""
        try:
            self.writer.replay_spool(self.feed_id)
        except Exception as exc:  # noqa: BLE001 - the writer replays it when the database returns
            self.log.warning("spool not replayed yet (database unavailable): {}", exc)
        restore = getattr(self.feed, "restore", None)
        if not self.consecutive and restore is None:
            return
        try:
            engine = self.writer.engine()
            if restore is not None:
                restore(engine, self.settings)
            if self.consecutive:
                table = DATA_TABLES[self.gap_policy.table]
                query = (
                    select(table.c.symbol, func.max(table.c.trade_id))
                    .where(table.c.source == self.feed.source)
                    .group_by(table.c.symbol)
                )
                with engine.connect() as conn:
                    for symbol, last in conn.execute(query):
                        self.tracker.last[symbol] = int(last)
        except Exception as exc:  # noqa: BLE001
            self.log.warning("could not read the last committed trades: {}", exc)
        if self.consecutive:
            self._seed_from_spool()
            for symbol, first in self.first_seen.ids.items():
                if symbol not in self.tracker.last:  # seen before a kill, never committed
                    self.tracker.last[symbol] = first - 1
            if self.tracker.last:
                self.log.info("resuming after trade ids {}", self.tracker.last)

    def _seed_from_spool(self) -> None:
        spool = self.writer.spool(self.feed_id)
        for path in sorted(spool.folder.glob("spool*")):
            try:
                records = list(Spool.records(path))
            except FileNotFoundError:  # replayed meanwhile: its rows are in the database
                continue
            for table, _c, rows in records:
                if table == self.gap_policy.table:
                    for row in rows:
                        last = self.tracker.last.get(row["symbol"])
                        if last is None or row["trade_id"] > last:
                            self.tracker.last[row["symbol"]] = row["trade_id"]

    # ---- the connection loop -------------------------------------------------------------------
    def _run(self) -> None:
        self._prepare()
        while not self._stop.is_set():
            while not self.writer.has_room() and not self._stop.wait(0.2):
                self.status = "backpressure"
            if self._stop.is_set():
                break
            settings = self.settings
            self._restart_reason = None
            url = self.feed.url(settings)
            if self.session is not None:
                self.session.connecting(settings)
            started = time.monotonic()
            try:
                ws = self._connect(url, settings)
            except Exception as exc:  # noqa: BLE001 - any connect failure: back off, retry
                self._failed(f"connect to {redact_url(url)} failed: {exc}")
                continue
            self.log.info("connected to {}", redact_url(url))
            reason = self._read(ws, settings)
            self._close(ws)
            self.connected_since = None
            if self._stop.is_set():
                self.log.info("disconnected: shutting down")
                break
            if self.session is not None:  # what the connection held is lost (order books)
                self.session.disconnected()
            self.reconnects += 1
            planned = reason.startswith("planned:")
            if planned or time.monotonic() - started > 30:
                self.backoff.reset()
            if planned:
                self.status = "disconnected"
                self.log.info("disconnected ({}): reconnecting now", reason)
            else:
                self._failed(f"disconnected: {reason}")
        self.status = "stopped"

    def _failed(self, message: str) -> None:
        self.status = "disconnected"
        self.last_error = message
        delay = self.backoff.next()
        self.log.warning("{}; reconnecting in {:.2f} s", message, delay)
        self._stop.wait(delay)

    def _connect(self, url: str, settings: Any) -> websocket.WebSocket:
        headers = {"User-Agent": BROWSER_USER_AGENT, **getattr(self.feed, "headers", {})}
        origin = headers.pop("Origin", None)  # the library sends its own unless given apart
        url_policy.check_url(url, url_policy.FEED_SCHEMES, "feed URL")
        ws = websocket.create_connection(
            url,
            timeout=settings.timeout_s,
            header=[f"{k}: {v}" for k, v in headers.items()],
            origin=origin,
            skip_utf8_validation=True,
            enable_multithread=True,
            **proxy_options(settings.proxy),
        )
        for message in self.feed.subscribe_messages(settings):
            ws.send(message)
        ws.settimeout(POLL_S)
        if hasattr(getattr(ws, "frame_buffer", None), "recv"):
            ws.frame_buffer.recv = BufferedRecv(ws._recv)
        self.connected_since = datetime.now(UTC)
        self.status = "connected"
        self.last_error = None
        self.last_message_at = time.time()
        return ws

    def _close(self, ws: websocket.WebSocket) -> None:
        try:
            ws.settimeout(1.0)
            ws.close(timeout=0.5)
        except Exception:  # noqa: BLE001 - already gone
            with contextlib.suppress(Exception):
                ws.shutdown()

    def _read(self, ws: websocket.WebSocket, settings: Any) -> str:
        silence_limit = settings.silence_limit_s
        opened = time.monotonic()
        max_age = self.max_connection_age_s
        last_frame = time.monotonic()
        parse = self.session.parse if self.session is not None else self.feed.parse
        pump = self.session.pump if self.session is not None else None
        keepalive = self.keepalive_message
        last_keepalive = opened
        max_frame = settings.max_frame_bytes
        OPCODE_CLOSE = websocket.ABNF.OPCODE_CLOSE
        DATA = (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY)
        reader = getattr(getattr(ws, "frame_buffer", None), "recv", None)
        idle = library_idle(ws) if isinstance(reader, BufferedRecv) else lambda: False
        while True:
            if self._stop.is_set():
                return "planned: stopping"
            if self._restart_reason is not None:
                return f"planned: {self._restart_reason}"
            if keepalive is not None or pump is not None:
                last_keepalive, why = self._between_frames(ws, pump, last_keepalive)
                if why is not None:
                    return why
            fast = reader.take_frame() if idle() else None
            if fast is not None:
                opcode, data = fast
            else:
                try:
                    opcode, frame = ws.recv_data_frame(True)
                    data = frame.data
                except websocket.WebSocketTimeoutException:
                    now = time.monotonic()
                    if now - last_frame > silence_limit:
                        return f"silent for {now - last_frame:.1f} s (limit {silence_limit} s)"
                    if max_age is not None and now - opened > max_age:
                        return "planned: connection age limit reached"
                    continue
                except Exception as exc:  # noqa: BLE001 - closed, reset, protocol error
                    return f"{type(exc).__name__}: {exc}"
                del frame
            last_frame = time.monotonic()
            if opcode == OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                return f"closed by the server (code {code} {data[2:].decode(errors='replace')})"
            if opcode not in DATA:
                continue  # ping (answered by the library) or pong
            stop_reason = self._take_message(data, max_frame, parse)
            del data  # an oversized frame is not kept while waiting for the next one
            if stop_reason is not None:
                return stop_reason
            # After the rows are accepted: a message read is never dropped for a planned close.
            if max_age is not None and time.monotonic() - opened > max_age:
                return "planned: connection age limit reached"

    def _between_frames(
        self, ws: Any, pump: Any, last_keepalive: float
    ) -> tuple[float, str | None]:
        """The application keep-alive when due, then the feed session's answers and timers;
        (when the keep-alive was last sent, why the connection must end or None)."""
        keepalive = self.keepalive_message
        if keepalive is not None and time.monotonic() - last_keepalive >= self.keepalive_interval_s:
            last_keepalive = time.monotonic()
            try:
                ws.send(keepalive)
            except Exception as exc:  # noqa: BLE001 - closed, reset
                return last_keepalive, f"keep-alive not sent: {type(exc).__name__}: {exc}"
            self.keepalives_sent += 1
        return last_keepalive, pump() if pump is not None else None

    def _take_message(self, data: bytes | str, max_frame: int, parse: Any) -> str | None:
        """Parse one data frame and queue its rows; a bad frame goes to dead_letter. Returns why
        the connection must end (server-announced reconnect, writer full), else None."""
        self.messages += 1
        self.last_message_at = time.time()
        received_at = datetime.now(UTC)
        if len(data) > max_frame:
            reason = f"frame of {len(data)} bytes is over max_frame_bytes ({max_frame})"
            self.dead_letter(data, reason, received_at)
            return None
        try:
            parsed = parse(data, received_at)
        except ParseError as exc:
            context = None
            if exc.record_key is not None:
                url = redact_url(self.feed.url(self.settings))
                context = {"record_key": exc.record_key, "url": url}
            self.dead_letter(data, str(exc), received_at, context)
            return None
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the feed either
            self.dead_letter(data, f"parser error: {type(exc).__name__}: {exc}", received_at)
            return None
        if parsed.reconnect:
            return f"planned: server announced {parsed.reconnect}"
        return self.store(parsed, data, received_at)

    def store(self, parsed: Parsed, data: bytes | str | None, received_at: datetime) -> str | None:
        """Queue the rows of `parsed` (from the frame `data`); why the connection must end when
        the writer is full, else None."""
        for table, rows in parsed.rows.items():
            policy = self.policy(table)
            if policy.refused is not None:
                rows = self._storable(policy, rows, data, received_at)
            if rows and not self._accept(policy, rows):
                return "writer queue full (database slow or down, spool full): backing off"
        return None

    def policy(self, table: str) -> TablePolicy:
        """How the rows of `table` are checked, tracked and written (the feed's declaration)."""
        policy = self.policies.get(table)
        return policy if policy is not None else policy_of(table)

    def _accept(self, policy: TablePolicy, rows: list[dict[str, Any]]) -> bool:
        table, on_conflict = policy.table, policy.on_conflict
        if policy is not self.gap_policy:
            return self.writer.submit(self.feed_id, table, rows, on_conflict)
        tracker = self.tracker
        for row in rows:
            symbol, trade_id = row["symbol"], row["trade_id"]
            last = tracker.last.get(symbol)
            if last is not None and trade_id <= last:
                self.writer.submit(self.feed_id, table, [row], on_conflict)  # a re-sent trade
                continue
            if last is None:
                self.first_seen.record(symbol, trade_id)  # durable before it is queued
            if not self.writer.submit(self.feed_id, table, [row], on_conflict):
                return False  # not seen: fetched back as part of a gap after reconnecting
            gap = tracker.observe(symbol, trade_id)
            if gap is not None and self.filler is not None:
                self.filler.request(symbol, *gap)
        return True

    def _storable(
        self,
        policy: TablePolicy,
        rows: list[dict[str, Any]],
        data: bytes | str | None,
        received_at: datetime,
    ) -> list[dict[str, Any]]:
        """The rows whose values can be stored; each other one goes to dead_letter with the frame
        (`data`; None: rows from the REST history, each dead-lettered as itself)."""
        bad = policy.refused(rows) if policy.refused is not None else []
        if not bad:
            return rows
        what = "trade" if policy.trades else policy.table
        for row, why in bad:
            key = {"source": row.get("source"), "symbol": row.get("symbol")}
            key["trade_id"] = row.get("trade_id")
            self.dead_letter(
                repr(row) if data is None else data,
                f"{what} {key['symbol']} #{key['trade_id']}: {why}",
                received_at,
                {"record_key": key, "url": redact_url(self.feed.url(self.settings))},
            )
        refused = {id(row) for row, _why in bad}
        return [row for row in rows if id(row) not in refused]

    def _submit_filled(self, rows: list[dict[str, Any]]) -> bool:
        # the filler submits the same list again while the queue is full: check it once
        policy = self.gap_policy
        if self._filled_checked[0] is not rows:
            sane = self._storable(policy, rows, None, datetime.now(UTC))
            self._filled_checked = (rows, sane)
        sane = self._filled_checked[1]
        return not sane or self.writer.submit(self.feed_id, policy.table, sane, policy.on_conflict)

    def dead_letter(
        self,
        data: bytes | str,
        reason: str,
        received_at: datetime,
        context: dict[str, Any] | None = None,
    ) -> None:
        """Keep `data` raw in dead_letter with `reason` (and the record's key in `context`)."""
        self.dead_letters += 1
        if isinstance(data, bytes):
            try:
                data[:PAYLOAD_HEAD_BYTES].decode("utf-8")
            except UnicodeDecodeError as exc:
                cut = exc.reason == "unexpected end of data" and len(data) > PAYLOAD_HEAD_BYTES
                if not cut:  # (a character the head cut in two is not an error)
                    reason += " (payload is not UTF-8: bytes shown as \\x escapes)"
        self.log.warning("frame sent to dead_letter: {}", reason)
        # a shard key names its feed
        row = dead_letter_row(
            worker_of(self.feed_id), reason, data, received_at=received_at, context=context
        )
        self.control_writer.submit(self.feed_id, "dead_letter", [row], "ignore")

    # ---- live state ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The engine's live state (status, connection, counters) as JSON-ready values."""
        out: dict[str, Any] = {
            "status": self.status,
            "connected_since": self.connected_since.isoformat() if self.connected_since else None,
            "last_message_at": (
                datetime.fromtimestamp(self.last_message_at, UTC).isoformat()
                if self.last_message_at
                else None
            ),
            "messages": self.messages,
            "reconnects": self.reconnects,
            "dead_letters": self.dead_letters,
            "symbols": list(self.settings.symbols),
            **self.writer.spool(self.feed_id).stats(),
        }
        if self.filler is not None:
            out.update(self.filler.stats.as_dict())
        if self.keepalive_message is not None:
            out["keepalives_sent"] = self.keepalives_sent
        if self.session is not None:
            out.update(self.session.stats())
        return out
