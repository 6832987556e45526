"""What docker/deploy_test.py and docker/deploy_checks.py share: the error, logging, commands,
polling and a free port."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any


class DeployTestError(AssertionError):
    """A promise of the deployment did not hold."""


def say(message: str) -> None:
    print(f"[deploy-test {time.strftime('%H:%M:%S')}] {message}", flush=True)


def sh(*args: str, check: bool = True, timeout: float = 600, env=None) -> str:
    """Run a command; its stdout. Raises with its stderr when it fails and `check`."""
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if check and done.returncode != 0:
        raise DeployTestError(
            f"{' '.join(args[:4])}... exited {done.returncode}: {done.stderr.strip()[-2000:]}"
        )
    return done.stdout


def wait_until(
    what: str,
    probe: Callable[[], Any],
    timeout_s: float,
    interval_s: float = 1.0,
    errors: tuple[type[Exception], ...] = (),
):
    """Call `probe` until it returns something truthy; that value. Raises after `timeout_s`.
    `errors`: exceptions besides the usual ones (commands, sockets) that mean "not yet"."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except (DeployTestError, OSError, subprocess.SubprocessError, *errors) as exc:
            last_error = exc
        time.sleep(interval_s)
    raise DeployTestError(f"{what}: not within {timeout_s:.0f} s (last error: {last_error})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
