"""`ingest replay`: every source's recording at its real paths, HTTP and websockets together."""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager

from ingestion_pipelines.replay.http_server import ReplayServer
from ingestion_pipelines.standins.feeds import MORE_PORTS, serve_feeds


@contextmanager
def replay_all(
    host="127.0.0.1",
    http_port=8700,
    binance_port=8701,
    ssi_port=8702,
    rate=5.0,
    out=sys.stdout,
    *,
    behaviours: dict | None = None,
    ssi_recording: str | None = None,
    more_ports: dict[str, int] | None = None,
):
    """Start the HTTP replay and both websocket servers; yields the `INGEST_*` variables that
    point every worker at them. `behaviours`: `ReplayDataset` attributes of real servers
    (`fmarket_page_cap`, `nav_history_days_before`, `fng_stamp_hour`); `ssi_recording`: an SSI
    variant ("97-fields", "derivatives") instead of the 102-field session."""
    http = ReplayServer(host, http_port)
    for name, value in (behaviours or {}).items():
        setattr(http.dataset, name, value)
    http.start()
    try:
        feeds = serve_feeds(
            host,
            binance_port,
            ssi_port,
            binance_rate=rate,
            ssi_recording=ssi_recording,
            out=None,
            more_ports=more_ports,
        )
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
    """`ingest replay`: serve every recording until SIGINT or SIGTERM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    # Options of real servers' behaviours, when the command line offers them.
    behaviours = {
        name: getattr(args, name)
        for name in ("fmarket_page_cap", "nav_history_days_before", "fng_stamp_hour")
        if getattr(args, name, None) is not None
    }
    with replay_all(
        args.host,
        args.http_port,
        args.binance_port,
        args.ssi_port,
        args.rate,
        behaviours=behaviours,
        ssi_recording=getattr(args, "ssi_recording", None),
        more_ports=MORE_PORTS,
    ):
        stop.wait()
    return 0
