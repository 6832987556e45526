"""`ingest replay`: every source's recording at its real paths, HTTP and websockets together."""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager

from ingestion_pipelines.replay.http_server import ReplayServer
from ingestion_pipelines.replay.ws_common import serve_feeds


@contextmanager
def replay_all(
    host="127.0.0.1", http_port=8700, binance_port=8701, ssi_port=8702, rate=5.0, out=sys.stdout
):
    """Start the HTTP replay and both websocket servers; yields the `INGEST_*` variables that
    point every worker at them."""
    http = ReplayServer(host, http_port).start()
    try:
        feeds = serve_feeds(host, binance_port, ssi_port, binance_rate=rate, out=None)
    except BaseException:
        http.stop()
        raise
    env = {**http.env(), **feeds.env}
    if out is not None:
        print(
            f"# replay: HTTP sources on {http.url}, Binance on {feeds.binance.url}, SSI on {feeds.ssi.url}",
            file=out,
        )
        for key, value in env.items():
            print(f"{key}={value}", file=out)
        out.flush()
    try:
        yield env
    finally:
        feeds.stop()
        http.stop()


def main(args) -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with replay_all(args.host, args.http_port, args.binance_port, args.ssi_port, args.rate):
        stop.wait()
    return 0
