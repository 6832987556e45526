"""`dagster-daemon` for the test stacks, its backfill loop every BACKFILL_LOOP_S instead of 30 s
and its look for failed runs to retry every RETRY_LOOP_S instead of 5 s.

Dagster's backfill daemon looks at the backfills once per `DEFAULT_DAEMON_INTERVAL_SECONDS`
(30 s, not configurable): a backfill's run is submitted up to 30 s after `ingest backfill`, and
the backfill is marked completed up to 30 s after its run ended. A test waiting for either waits
for that clock, not for the work. Run retries (dagster.yaml's `run_retries`) are launched by the
event-log consumer, paced by Dagster's `DAGSTER_EVENT_LOG_CONSUMER_DAEMON_INTERVAL_SECONDS`.
Everything else is the stock daemon (`dagster-daemon ARGS`); run as a script
(`python quick_daemon.py run -w workspace.yaml`) so that it imports nothing of ours.
"""

from __future__ import annotations

import os
import sys

BACKFILL_LOOP_S = 2
RETRY_LOOP_S = 1


def main() -> int:
    # read when Dagster's event-log consumer is imported, so before anything of Dagster's
    os.environ.setdefault("DAGSTER_EVENT_LOG_CONSUMER_DAEMON_INTERVAL_SECONDS", str(RETRY_LOOP_S))
    import dagster._daemon.controller as controller
    from dagster._daemon.cli import main as daemon_main

    if not isinstance(getattr(controller, "DEFAULT_DAEMON_INTERVAL_SECONDS", None), int):
        raise SystemExit(
            "dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS is gone: "
            "see how this Dagster version paces its backfill daemon"
        )
    # read by the backfill loop when it starts (dagster/_daemon/backfill.py)
    controller.DEFAULT_DAEMON_INTERVAL_SECONDS = BACKFILL_LOOP_S
    sys.argv[0] = "dagster-daemon"
    return daemon_main()


if __name__ == "__main__":
    sys.exit(main())
