"""When a Dagster UI is really ready: the webserver answers, the code location is loaded
(not failed), and the daemon's required parts beat. `make demo` says so once, and says what it
is still waiting for until then.

    wait_until_ready("http://127.0.0.1:3000", stop_event, say=print)  # True once ready
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ingestion_pipelines.dagster_api.client import ControlError, DagsterClient

WAIT_S = 300.0


def readiness(client: DagsterClient) -> tuple[bool, str]:
    """(ready, what it is waiting for or what is wrong), from the `Health` operation."""
    try:
        data = client.execute("Health")
    except ControlError:
        return False, "the webserver is starting"
    workspace = data.get("workspaceOrError") or {}
    entries = workspace.get("locationEntries") or []
    if not entries:
        return False, "the code location is loading"
    for entry in entries:
        if entry.get("loadStatus") != "LOADED":
            return False, f"the code location {entry['name']} is loading"
        answer = entry.get("locationOrLoadError") or {}
        if answer.get("__typename") == "PythonError":
            return False, f"the code location {entry['name']} failed: {answer.get('message')}"
    daemons = ((data.get("instance") or {}).get("daemonHealth") or {}).get(
        "allDaemonStatuses"
    ) or []
    waiting = sorted(d["daemonType"] for d in daemons if d.get("required") and not d["healthy"])
    if waiting:
        return False, f"the daemon is starting ({', '.join(waiting)})"
    return True, "ready"


def wait_until_ready(
    url: str,
    stop: threading.Event,
    *,
    say: Callable[[str], None] = print,
    timeout_s: float = WAIT_S,
    interval_s: float = 1.0,
) -> bool:
    """Poll `url` until it is ready (True) or `stop`/`timeout_s` (False); `say` each new state."""
    client = DagsterClient(url, timeout_s=5)
    started = time.monotonic()
    last = None
    while not stop.is_set():
        ready, state = readiness(client)
        elapsed = time.monotonic() - started
        if ready:
            say(f"  Dagster UI ready: {url}  (code loaded, daemon running; {elapsed:.0f} s)")
            return True
        if state != last:
            last = state
            say(f"  waiting for the Dagster UI: {state}")
        if state.startswith("the code location") and "failed" in state:
            return False
        if elapsed > timeout_s:
            say(f"  the Dagster UI is not ready after {timeout_s:.0f} s: {state}")
            return False
        stop.wait(interval_s)
    return False
