"""The Chromium reaper: a tiny process started next to a run's browser that kills the browser's
process groups once the run's process is gone, however it ended (returned, raised, or was killed
with SIGKILL, when nothing in it can run any more).

It holds the read end of a pipe whose write end only the run's process holds: the read returns
end-of-file exactly when that process has exited. It then kills, with SIGKILL, the process group
of every process whose command line carries the browser's marker switch (Chromium and its
helpers run in the group of the browser process, which Playwright's driver starts as a group
leader), then every marked process left. It runs as a plain script (`python reaper.py MARKER`),
importing nothing of the project, so it starts in a few milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys


def marked_processes(marker: str) -> list[int]:
    """The ids of the processes whose command line holds `marker` (this one excepted)."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if needle in handle.read():
                    found.append(int(entry))
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def kill_marked(marker: str) -> int:
    """SIGKILL the process groups of the marked processes, then any marked process left;
    returns how many marked processes there were."""
    pids = marked_processes(marker)
    groups = set()
    for pid in pids:
        try:
            groups.add(os.getpgid(pid))
        except OSError:
            continue
    own_group = os.getpgid(0)
    for group in groups - {own_group}:
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)
    for pid in marked_processes(marker):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def main(argv: list[str]) -> int:
    """Wait for end-of-file on stdin (the run's process has exited), then reap."""
    marker = argv[1]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C to the run's group is not for us
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except OSError:
        pass
    kill_marked(marker)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
