"""Shared by the sidecar tests: run a sidecar (in this process or as a real process), wait on
conditions, and compare what `trade_tick` holds with the server's trade journal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, select, text

from ingestion_pipelines.sidecar.runner import Sidecar, SidecarOptions
from ingestion_pipelines.storage.tables import trade_tick

FAST = {"tick_s": 0.2, "config_poll_s": 0.5, "state_interval_s": 0.5, "lock_ttl_s": 4.0}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.05
) -> float:
    """Poll `predicate` until true; returns the seconds it took, fails the test on timeout."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


@contextmanager
def sidecar_thread(
    database_url: str, feeds: list[str], dagster_url: str | None = None, **overrides
) -> Iterator[Sidecar]:
    options = SidecarOptions(database_url=database_url, feeds=feeds, dagster_url=dagster_url)
    for key, value in {**FAST, **overrides}.items():
        setattr(options, key, value)
    sidecar = Sidecar(options)
    thread = threading.Thread(target=sidecar.run, name="test-sidecar", daemon=True)
    thread.start()
    try:
        yield sidecar
    finally:
        sidecar.request_stop()
        thread.join(15)
        assert not thread.is_alive(), "the sidecar did not stop"


def stored_trades(database_url: str, source: str = "binance") -> dict[str, list[tuple]]:
    """(trade_id, price, quantity, side, traded_at epoch ms) per symbol, in id order."""
    t = trade_tick.c
    query = (
        select(t.symbol, t.trade_id, t.price, t.quantity, t.side, t.traded_at)
        .where(t.source == source)
        .order_by(t.symbol, t.trade_id)
    )
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).fetchall()
    finally:
        engine.dispose()
    out: dict[str, list[tuple]] = {}
    for symbol, trade_id, price, qty, side, traded_at in rows:
        ms = round(traded_at.timestamp() * 1000)
        out.setdefault(symbol, []).append((int(trade_id), price, qty, side, ms))
    return out


def journal(server, symbol: str) -> list[tuple]:
    """The server's trades in the same shape (m=true: the taker sold)."""
    return [
        (t.id, Decimal(t.price), Decimal(t.qty), "sell" if t.is_buyer_maker else "buy", t.time)
        for t in server.trades(symbol)
    ]


def count_trades(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT COUNT(*) FROM trade_tick")).scalar_one()
    except Exception:  # noqa: BLE001 - database down or not migrated yet
        return -1
    finally:
        engine.dispose()


def assert_exactly_once(database_url: str, server) -> None:
    """Every trade the server journaled is in trade_tick once, with identical values."""
    stored = stored_trades(database_url)
    for symbol in server.symbols:
        expected = journal(server, symbol)
        got = stored.get(symbol, [])
        missing = sorted({e[0] for e in expected} - {g[0] for g in got})
        assert not missing, f"{symbol}: {len(missing)} trades missing, e.g. {missing[:10]}"
        assert len(got) == len(expected), f"{symbol}: {len(got)} stored, {len(expected)} sent"
        assert got == expected, f"{symbol}: stored values differ from what the server sent"


def wait_all_stored(database_url: str, server, timeout: float = 30.0) -> None:
    total = lambda: sum(len(server.trades(s)) for s in server.symbols)  # noqa: E731
    wait_until(
        lambda: count_trades(database_url) >= total(), timeout, "every journaled trade stored"
    )


def sidecar_env(server, database_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        INGEST_DATABASE_URL=database_url,
        INGEST_BINANCE_TRADES__BASE_URL=server.url,
        INGEST_BINANCE_TRADES__REST_BASE_URL=server.rest_url,
        INGEST_BINANCE_TRADES__SYMBOLS=",".join(s.lower() for s in server.symbols),
        INGEST_DAGSTER_URL="http://127.0.0.1:9",  # nobody there: reporting must not matter
        INGEST_SIDECAR_HTTP_PORT="0",  # several sidecars on one host: a test gives each a port
    )
    env.update(extra)
    return env


def spawn_sidecar(
    env: dict[str, str], log: Path, feeds: str = "binance_trades"
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ingestion_pipelines.sidecar", "--feeds", feeds],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def terminate(proc: subprocess.Popen, timeout: float = 10.0) -> tuple[int, float]:
    """SIGTERM; returns (exit code, seconds it took)."""
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout)
    return code, time.monotonic() - start


def kill9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (name) "
    return fields[0], int(fields[1])


def writer_processes(parent_pid: int) -> list[int]:
    """The running writer processes (`ingestion_pipelines.sidecar.writer_process`) started by
    the process `parent_pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is None or stat[1] != parent_pid or stat[0] == "Z":
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"ingestion_pipelines.sidecar.writer_process" in cmdline:
            found.append(int(entry.name))
    return found


def process_ended(pid: int) -> bool:
    """Whether the process is gone (or a zombie nobody has reaped yet)."""
    stat = _stat(pid)
    return stat is None or stat[0] == "Z"


class PostRecorder:
    """A local HTTP endpoint standing where the Dagster webserver would be: it records every POST
    (path and JSON body) and answers `{}` (the reporter's own tests cover Dagster itself)."""

    def __init__(self):
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        posts = self.posts = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                posts.append((self.path, json.loads(body or b"{}")))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()


def trade_row(i: int, price: str = "1.5") -> dict:
    """A trade_tick row for BTCUSDT with trade id `i` (the writer tests' unit of work)."""
    now = datetime.now(UTC)
    return {
        "source": "binance",
        "symbol": "BTCUSDT",
        "trade_id": i,
        "price": Decimal(price),
        "quantity": Decimal("0.1"),
        "side": "buy",
        "traded_at": now,
        "received_at": now,
    }
