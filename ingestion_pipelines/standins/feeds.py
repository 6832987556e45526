"""The demo wiring of the websocket replays: the feed servers started together, and the
environment variables that point the feed workers at them (`ingest replay`, `ingest demo`).

Binance trades and SSI listen on the ports given; the stand-ins of issue 21's feeds (OKX and Bybit
trades replaying their recorded frames, the Binance depth exchange) on free ports."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Self, TextIO

from ingestion_pipelines.feeds.binance.replay import BinanceServer
from ingestion_pipelines.feeds.binance.replay.depth_server import BinanceDepthServer
from ingestion_pipelines.feeds.bybit.replay import BybitServer
from ingestion_pipelines.feeds.okx.replay import OkxServer
from ingestion_pipelines.feeds.ssi.replay import SsiServer, recording_path


def feed_env(binance: BinanceServer, ssi: SsiServer) -> dict[str, str]:
    """The environment variables that point the feed workers at the local servers."""
    return {
        "INGEST_BINANCE_TRADES__BASE_URL": binance.url,
        "INGEST_BINANCE_TRADES__REST_BASE_URL": binance.rest_url,
        "INGEST_SSI_IBOARD__BASE_URL": ssi.url,
    }


# the depth feed's default symbols, and the recorded books (for a client that asks for them)
DEPTH_SYMBOLS = ["BTCUSDT", "ETHUSDT", "NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]


def more_feed_env(servers: dict[str, Any]) -> dict[str, str]:
    """The variables that point `okx_trades`, `bybit_trades` and `binance_depth` at their
    stand-ins (`servers` by worker id); the feeds keep their default symbols, which the stand-ins
    serve (OKX and Bybit: BTC-USDT / BTCUSDT recorded, ETH none; depth: generated books)."""
    env: dict[str, str] = {}
    okx, bybit, depth = (servers.get(k) for k in ("okx_trades", "bybit_trades", "binance_depth"))
    if okx is not None:
        env["INGEST_OKX_TRADES__BASE_URL"] = okx.url
        env["INGEST_OKX_TRADES__REST_BASE_URL"] = okx.rest_url
    if bybit is not None:
        env["INGEST_BYBIT_TRADES__BASE_URL"] = bybit.url
    if depth is not None:
        env["INGEST_BINANCE_DEPTH__BASE_URL"] = depth.url
        env["INGEST_BINANCE_DEPTH__REST_BASE_URL"] = depth.rest_url
    return env


# Where `ingest replay` serves them (the container stack's replay overlay points the feeds here).
MORE_PORTS = {"okx_trades": 8703, "bybit_trades": 8704, "binance_depth": 8705}


def start_more_servers(
    host: str = "127.0.0.1", ports: dict[str, int] | None = None
) -> dict[str, Any]:
    """The stand-ins of `okx_trades`, `bybit_trades` and `binance_depth`, on `ports` (by worker
    id; free ports when not given)."""
    ports = ports or {}
    started: dict[str, Any] = {}
    try:
        for worker_id, server in (
            ("okx_trades", OkxServer(host, ports.get("okx_trades", 0))),
            ("bybit_trades", BybitServer(host, ports.get("bybit_trades", 0))),
            (
                "binance_depth",
                BinanceDepthServer(host, ports.get("binance_depth", 0), symbols=DEPTH_SYMBOLS),
            ),
        ):
            started[worker_id] = server.start()
    except BaseException:
        for server in started.values():
            server.stop()
        raise
    return started


@dataclass
class FeedServers:
    """The feed servers, started; `stop()` (or the context manager) stops them."""

    binance: BinanceServer
    ssi: SsiServer
    more: dict[str, Any] = field(default_factory=dict)  # by worker id (issue 21's feeds)

    @property
    def env(self) -> dict[str, str]:
        """The variables that point the feed workers at these servers."""
        return {**feed_env(self.binance, self.ssi), **more_feed_env(self.more)}

    def stop(self) -> None:
        """Stop every server."""
        self.binance.stop()
        self.ssi.stop()
        for server in self.more.values():
            server.stop()

    def wait(self, stop: threading.Event | None = None) -> None:
        """Block until `stop` is set (or KeyboardInterrupt), then stop both servers."""
        stop = stop or threading.Event()
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_feeds(
    host: str = "127.0.0.1",
    port_binance: int = 9001,
    port_ssi: int = 9002,
    *,
    binance_symbols: Iterable[str] = ("BTCUSDT", "ETHUSDT"),
    binance_rate: float = 5.0,
    ssi_speed: float = 1.0,
    ssi_loop: bool = True,
    ssi_recording: str | None = None,
    out: TextIO | None = sys.stdout,
    block: bool = False,
    more_ports: dict[str, int] | None = None,
) -> FeedServers:
    """Start the Binance and SSI servers for the demo and print the variables to use.

    The Binance server generates trades for `binance_symbols` at `binance_rate` messages/s and
    answers REST on the same port; the SSI server replays the bundled recording in a loop with
    timestamps shifted to now (`ssi_recording`: another bundled variant, e.g. "97-fields" or
    "derivatives", or a file). With `block`, waits for Ctrl-C and stops both.
    """
    binance = BinanceServer(host, port_binance, symbols=binance_symbols, rate=binance_rate).start()
    ssi: SsiServer | None = None
    try:
        recording = recording_path(ssi_recording) if ssi_recording else None
        ssi = SsiServer(
            host, port_ssi, speed=ssi_speed, loop=ssi_loop, shift_to_now=True, recording=recording
        ).start()
        more = start_more_servers(host, more_ports)
    except BaseException:
        binance.stop()
        if ssi is not None:
            ssi.stop()
        raise
    servers = FeedServers(binance, ssi, more)
    if out is not None:
        print(
            f"# Binance trades: {binance.url}/stream?streams="
            + "/".join(f"{s.lower()}@trade" for s in binance.symbols)
            + f" (REST on {binance.rest_url})",
            file=out,
        )
        print(
            f"# SSI iBoard: {ssi.url}/realtime (symbols {', '.join(ssi.symbols)})",
            file=out,
        )
        names = ", ".join(f"{w} on {s.url}" for w, s in more.items())
        print(f"# recorded stand-ins: {names}", file=out)
        for key, value in servers.env.items():
            print(f"{key}={value}", file=out)
        out.flush()
    if block:
        servers.wait()
    return servers
