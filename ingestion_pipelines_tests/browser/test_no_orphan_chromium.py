"""No Chromium outlives the process that started it: failed, killed with SIGKILL, or killed
with its whole process group (Playwright's driver too), counted by the marker on the browser's
command line and by the processes of its group. (A normal close is every other test's.)"""

import os
import signal
import subprocess
import sys
import time

import pytest

from ingestion_pipelines.browser.process import browser_group_members, count_marked

HELPER = "ingestion_pipelines_tests.browser.browser_process"


def running(pid: int) -> bool:
    """True while `pid` is a live process (a zombie waiting for its parent is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(condition, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.mark.parametrize(
    "mode", ["kill", "kill-group", pytest.param("raise", marks=pytest.mark.slow)]
)
def test_no_chromium_is_left_after_the_run_process_ends(mode):
    child = subprocess.Popen(
        [sys.executable, "-m", HELPER, "raise" if mode == "raise" else "wait"],
        start_new_session=True,  # its own group, as a run launched by Dagster's executor
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    marker = child.stdout.readline().strip()
    assert marker.startswith("--ingest-browser-owner="), marker
    members = []
    if mode != "raise":
        members = browser_group_members(marker)
        assert count_marked(marker) >= 1 and len(members) >= 2  # the browser and its helpers
        if mode == "kill":
            os.kill(child.pid, signal.SIGKILL)
        else:  # the run's whole group at once: Playwright's driver dies with it
            os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    assert wait_until(lambda: count_marked(marker) == 0), f"{count_marked(marker)} left"
    # every process of the browser's group (renderers, zygotes, GPU...) is gone too
    assert wait_until(lambda: not any(running(pid) for pid in members))
