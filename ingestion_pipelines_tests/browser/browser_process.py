"""A run process holding a browser, for the reaper tests: it starts a `BrowserPool`, prints the
marker on its processes' command lines, then either waits to be killed (`wait`) or raises
(`raise`) without closing it."""

import sys

from ingestion_pipelines.browser.pool import BrowserPool, BrowserSettings


def main(mode: str) -> None:
    pool = BrowserPool(BrowserSettings(pool_size=1)).start()
    pool.fetch("data:text/html,<title>up</title>")
    print(pool.marker, flush=True)
    if mode == "wait":
        sys.stdin.read()  # until the test kills this process
    else:
        raise RuntimeError("the run failed")  # no close(): the process just ends


if __name__ == "__main__":
    main(sys.argv[1])
