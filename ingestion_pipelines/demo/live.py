"""The demo's live page: a private `redis-server` on a free loopback port (when installed and
no INGEST_REDIS_URL is given) for the sidecar to publish on, and `ingest live` relaying it.

    with ExitStack() as stack:
        live = start_live_page(stack, env, live_port=8790)   # LivePage, or None with a reason
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from ingestion_pipelines.core.settings import PROJECT_ROOT, local_data_dir

SEARCH_DIRS = ("/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin")
READY_S = 15.0


@dataclass
class LivePage:
    """What the demo tells: where the page is, or why there is none."""

    url: str | None
    why_not: str | None = None


def redis_server_binary() -> str | None:
    """`redis-server` on PATH or in the usual folders (Debian's package puts it in /usr/bin)."""
    found = shutil.which("redis-server")
    if found:
        return found
    for folder in SEARCH_DIRS:
        candidate = os.path.join(folder, "redis-server")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _wait_until_answers(url: str, process: subprocess.Popen) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    deadline = time.monotonic() + READY_S
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}")
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not answer within {READY_S:g} s"
                    ) from None
                time.sleep(0.05)  # polling a readiness check, not standing in for one
    finally:
        client.close()


def private_redis(stack: ExitStack, binary: str, folder: Path) -> str:
    """A `redis-server` of the demo alone: 127.0.0.1, a free port, a random password, nothing
    saved; stopped when `stack` closes. Returns its URL."""
    folder.mkdir(parents=True, exist_ok=True)
    port, password = _free_port(), secrets.token_hex(16)
    config = folder / "redis.conf"  # the password in a 0600 file, not on a command line
    config.touch(mode=0o600)
    config.write_text(
        f"port {port}\nbind 127.0.0.1\nprotected-mode yes\nrequirepass {password}\n"
        f'save ""\nappendonly no\ndir {folder}\n'
    )
    process = subprocess.Popen(
        [binary, str(config)], stdout=(folder / "redis.log").open("ab"), stderr=subprocess.STDOUT
    )
    stack.callback(_stop, process)
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    from ingestion_pipelines.core.redaction import register_secret

    register_secret(password)
    _wait_until_answers(url, process)
    return url


def start_live_page(stack: ExitStack, env: dict[str, str], live_port: int) -> LivePage:
    """Redis for the demo (INGEST_REDIS_URL set into `env`) and `ingest live` on `live_port`,
    both stopped when `stack` closes; or why the demo has no live page."""
    if not env.get("INGEST_REDIS_URL"):
        binary = redis_server_binary()
        if binary is None:
            return LivePage(
                None,
                "redis-server is not installed (Debian: apt-get install redis-server) and "
                "INGEST_REDIS_URL is not set: the live page relays what the sidecar publishes "
                "on Redis",
            )
        try:
            env["INGEST_REDIS_URL"] = private_redis(stack, binary, local_data_dir() / "demo_redis")
        except (OSError, RuntimeError) as exc:
            return LivePage(None, f"the demo's redis-server did not start: {exc}")
    if _port_taken(live_port):
        return LivePage(None, f"port {live_port} is taken (choose another with --live-port)")
    process = subprocess.Popen(
        [sys.executable, "-m", "ingestion_pipelines.cli", "live", "--port", str(live_port)],
        env={**env, "INGEST_LIVE_HOST": "127.0.0.1"},
        cwd=PROJECT_ROOT,
    )
    stack.callback(_stop, process)
    return LivePage(f"http://127.0.0.1:{live_port}/")
