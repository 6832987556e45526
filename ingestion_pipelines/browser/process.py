"""Debian's Chromium under Playwright: its flags, the marker on its command line, and the reaper
that guarantees no Chromium outlives the process that started it.

Playwright's own browser downloads (`playwright install`) are not used: the system Chromium
(`apt-get install chromium`) is the default, at `/usr/bin/chromium`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from ingestion_pipelines.browser import reaper

DEFAULT_EXECUTABLE = "/usr/bin/chromium"
# Headless (Playwright adds --headless), no sandbox (containers without user namespaces), no
# GPU, no QUIC (a proxy sees every request), and none of Chromium's own background traffic.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
MARKER_SWITCH = "--ingest-browser-owner"


class BrowserStartError(RuntimeError):
    """Chromium could not be started (the message says which executable and why)."""


def new_marker() -> str:
    """A switch naming one browser's processes, unique to this start."""
    return f"{MARKER_SWITCH}={os.getpid()}-{uuid.uuid4().hex[:12]}"


def check_executable(path: str) -> str:
    """The executable, or a clear error saying how to install it."""
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        raise BrowserStartError(
            f"no Chromium at {path!r}: install Debian's (`apt-get install -y chromium`, as in "
            ".ci/system-deps.sh) or set the browser resource's executable_path"
        )
    return path


@dataclass
class Reaper:
    """The running reaper of one browser: closing `pipe` (or this process ending) triggers it."""

    process: subprocess.Popen
    marker: str

    def release(self) -> None:
        """Let the reaper kill what is left of the browser now, and wait for it."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_reaper(marker: str) -> Reaper:
    """Start the reaper for the browser carrying `marker`, in its own session (a signal to this
    run's process group does not reach it). Its stdin is a pipe only this process writes to."""
    process = subprocess.Popen(
        [sys.executable, "-S", reaper.__file__, marker],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    return Reaper(process, marker)


def count_marked(marker: str) -> int:
    """How many processes carry `marker` (tests count leftovers with it)."""
    return len(reaper.marked_processes(marker))


def browser_group_members(marker: str) -> list[int]:
    """Every process in the process groups of the processes carrying `marker`."""
    groups = set()
    for pid in reaper.marked_processes(marker):
        try:
            groups.add(os.getpgid(pid))
        except OSError:
            continue
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) in groups:
                    members.append(int(entry))
            except OSError:
                continue
    return members
