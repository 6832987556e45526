"""`ingest replay` as its own process, with the real servers' behaviours switched on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request

from ingestion_pipelines_tests.test_cli import INGEST
from ingestion_pipelines_tests.testbed.base import free_port


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_replay_caps_fmarket_pages_when_asked():
    ports = [free_port() for _ in range(3)]
    command = [str(INGEST), "replay", "--http-port", str(ports[0]), "--binance-port"]
    command += [str(ports[1]), "--ssi-port", str(ports[2]), "--fmarket-page-cap", "3"]
    process = subprocess.Popen(command, env=os.environ.copy(), start_new_session=True)
    try:
        url = f"http://127.0.0.1:{ports[0]}/res/products/filter"
        deadline = time.monotonic() + 60
        while True:
            try:
                body = _post(
                    url, {"types": ["NEW_FUND", "TRADING_FUND"], "page": 1, "pageSize": 50}
                )
                break
            except OSError:
                assert time.monotonic() < deadline, "ingest replay did not answer"
                time.sleep(0.3)
        assert len(body["data"]["rows"]) == 3  # the cap, whatever pageSize asked
        assert body["data"]["total"] > 3
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
