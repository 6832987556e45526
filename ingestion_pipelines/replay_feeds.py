"""The demo wiring of the websocket replays: both feed servers started together, and the
environment variables that point the feed workers at them (`ingest replay`, `ingest demo`)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Self, TextIO

from ingestion_pipelines.feeds.binance.replay import BinanceServer
from ingestion_pipelines.feeds.ssi.replay import SsiServer, recording_path


def feed_env(binance: BinanceServer, ssi: SsiServer) -> dict[str, str]:
    """The environment variables that point the feed workers at the local servers."""
    return {
        "INGEST_BINANCE_TRADES__BASE_URL": binance.url,
        "INGEST_BINANCE_TRADES__REST_BASE_URL": binance.rest_url,
        "INGEST_SSI_IBOARD__BASE_URL": ssi.url,
    }


@dataclass
class FeedServers:
    """Both feed servers, started; `stop()` (or the context manager) stops them."""

    binance: BinanceServer
    ssi: SsiServer

    @property
    def env(self) -> dict[str, str]:
        """The variables that point the feed workers at these servers."""
        return feed_env(self.binance, self.ssi)

    def stop(self) -> None:
        """Stop both servers."""
        self.binance.stop()
        self.ssi.stop()

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
) -> FeedServers:
    """Start the Binance and SSI servers for the demo and print the variables to use.

    The Binance server generates trades for `binance_symbols` at `binance_rate` messages/s and
    answers REST on the same port; the SSI server replays the bundled recording in a loop with
    timestamps shifted to now (`ssi_recording`: another bundled variant, e.g. "97-fields" or
    "derivatives", or a file). With `block`, waits for Ctrl-C and stops both.
    """
    binance = BinanceServer(host, port_binance, symbols=binance_symbols, rate=binance_rate).start()
    try:
        recording = recording_path(ssi_recording) if ssi_recording else None
        ssi = SsiServer(
            host, port_ssi, speed=ssi_speed, loop=ssi_loop, shift_to_now=True, recording=recording
        ).start()
    except BaseException:
        binance.stop()
        raise
    servers = FeedServers(binance, ssi)
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
        for key, value in servers.env.items():
            print(f"{key}={value}", file=out)
        out.flush()
    if block:
        servers.wait()
    return servers
