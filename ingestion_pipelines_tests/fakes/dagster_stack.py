"""A real Dagster stack for tests: `dagster-webserver` and `dagster-daemon` as subprocesses.

    workspace = write_workspace(tmp, "defs = dg.Definitions(...)")      # or a python file path
    with DagsterStack(workspace, root=tmp / "dagster", env={"INGEST_DATABASE_URL": url}) as stack:
        stack.graphql("{ version }")
        stack.url            # http://127.0.0.1:<free port>

Both processes run on 127.0.0.1 with a temporary DAGSTER_HOME (an instance on SQLite, telemetry
off) under `root`, in their own process group (and with a parent-death signal when `setpriv`
exists), so nothing outlives the test. `start()` returns once the webserver answers GraphQL and
the code location is loaded (a location that fails to load raises with its Python error);
`wait_for_daemon()` waits for the daemon's sensor heartbeat. The daemon is Dagster's, its backfill
loop paced every 2 s instead of 30 (quick_daemon.py). Logs are in `root/*.log` and their tails are
in every error.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ingestion_pipelines_tests.testbed.base import free_port

__all__ = ["DagsterStack", "DagsterStackError", "wait_until", "write_workspace"]

LOCATION = "ingestion_pipelines"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
_BIN = Path(sys.executable).parent
_SETPRIV = shutil.which("setpriv")
# `dagster-daemon` with its backfill loop every 2 s rather than 30 (see quick_daemon.py)
_DAEMON = [sys.executable, str(Path(__file__).with_name("quick_daemon.py"))]
T = TypeVar("T")

_LOCATION_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message stack }
        }
      }
    }
  }
}
"""

_DAEMON_QUERY = """
{ instance { daemonHealth { daemonStatus(daemonType: "SENSOR") { healthy } } } }
"""


class DagsterStackError(RuntimeError):
    """The stack did not start, or a GraphQL request to it failed."""


def wait_until(
    predicate: Callable[[], T], timeout_s: float, *, interval_s: float = 0.1, what: str = "it"
) -> T:
    """Poll `predicate` until it returns a truthy value (returned) or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            last_error = exc
        if time.monotonic() >= deadline:
            suffix = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}{suffix}")
        time.sleep(interval_s)


def write_workspace(
    folder: Path,
    code: str,
    *,
    location_name: str = LOCATION,
    working_directory: Path = PROJECT_ROOT,
) -> Path:
    """Write `code` (Python source defining `defs`) to `folder/defs_under_test.py` and a
    workspace.yaml loading it as `location_name`; the workspace.yaml path."""
    folder.mkdir(parents=True, exist_ok=True)
    python_file = folder / "defs_under_test.py"
    python_file.write_text(textwrap.dedent(code))
    workspace = folder / "workspace.yaml"
    workspace.write_text(
        "load_from:\n"
        "  - python_file:\n"
        f"      relative_path: {json.dumps(str(python_file))}\n"
        f"      location_name: {json.dumps(location_name)}\n"
        f"      working_directory: {json.dumps(str(working_directory))}\n"
    )
    return workspace


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        # fields: state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.append(int(stat.parent.name))
    return found


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


class DagsterStack:
    """A `dagster-webserver` (+ optionally `dagster-daemon`) for one workspace.yaml."""

    request_headers: Mapping[str, str] = {}  # sent with every `graphql()` call

    def __init__(
        self,
        workspace: Path,
        *,
        root: Path,
        env: Mapping[str, str] | None = None,
        daemon: bool = True,
        location_name: str = LOCATION,
        startup_timeout_s: float = 60.0,
    ):
        self.workspace = Path(workspace)
        self.root = Path(root)
        self.extra_env = dict(env or {})
        self.with_daemon = daemon
        self.location_name = location_name
        self.startup_timeout_s = startup_timeout_s
        self.port = 0
        self.home = self.root / "dagster_home"
        self.procs: dict[str, subprocess.Popen] = {}
        self.groups: list[int] = []  # every process group started (one per process)
        self.logs: dict[str, Path] = {}

    # ---- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        # Hermetic: no DAGSTER_* / INGEST_* from the caller; `env` gives what the test wants.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "INGEST_"))}
        env.update(
            DAGSTER_HOME=str(self.home),
            DAGSTER_DISABLE_TELEMETRY="1",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, args: list[str]) -> None:
        log = self.root / f"{name}.log"
        self.logs[name] = log
        prefix = []
        if _SETPRIV is not None and threading.current_thread() is threading.main_thread():
            prefix = [_SETPRIV, "--pdeathsig=KILL", "--"]
        with log.open("ab") as out:
            self.procs[name] = subprocess.Popen(
                [*prefix, *args],
                cwd=str(self.root),
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.groups.append(self.procs[name].pid)

    def start(self) -> DagsterStack:
        self.root.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        self._init_instance()
        self.port = free_port()
        try:
            self._spawn(
                "webserver",
                [
                    str(_BIN / "dagster-webserver"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-w",
                    str(self.workspace),
                ],
            )
            if self.with_daemon:
                self._spawn("daemon", [*_DAEMON, "run", "-w", str(self.workspace)])
            self._wait_loaded()
        except BaseException:
            self.close()
            raise
        return self

    def _init_instance(self) -> None:
        """Create the instance's SQLite storage once, before the processes start: several
        processes creating it at the same moment can stamp its schema version twice."""
        from dagster import DagsterInstance

        with DagsterInstance.from_config(str(self.home)) as instance:
            instance.get_runs(limit=1)

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise DagsterStackError(
                    f"dagster {name} exited with {proc.returncode}:\n{_tail(self.logs[name])}"
                )

    def _wait_loaded(self) -> None:
        def loaded() -> bool:
            self._check_alive()
            try:
                data = self.graphql(_LOCATION_QUERY, timeout_s=5)
            except DagsterStackError:
                return False
            entries = data["workspaceOrError"].get("locationEntries") or []
            for entry in entries:
                if entry["name"] != self.location_name or entry["loadStatus"] != "LOADED":
                    continue
                location = entry.get("locationOrLoadError") or {}
                if location.get("__typename") == "PythonError":
                    raise DagsterStackError(
                        f"code location {self.location_name} failed to load: "
                        f"{location.get('message')}\n{''.join(location.get('stack') or [])}"
                    )
                return location.get("__typename") == "RepositoryLocation"
            return False

        try:
            wait_until(loaded, self.startup_timeout_s, interval_s=0.2, what="dagster-webserver")
        except DagsterStackError:
            raise
        except TimeoutError as exc:
            raise DagsterStackError(f"{exc}\n{self.describe_logs()}") from None

    def wait_for_daemon(self, timeout_s: float = 60.0) -> None:
        """Wait until the daemon's sensor loop has sent a healthy heartbeat."""

        def healthy() -> bool:
            self._check_alive()
            data = self.graphql(_DAEMON_QUERY, timeout_s=5)
            return bool(data["instance"]["daemonHealth"]["daemonStatus"]["healthy"])

        try:
            wait_until(healthy, timeout_s, interval_s=0.5, what="dagster-daemon")
        except TimeoutError as exc:
            raise DagsterStackError(f"{exc}\n{self.describe_logs()}") from None

    def describe_logs(self) -> str:
        return "\n".join(f"--- {name} log:\n{_tail(path)}" for name, path in self.logs.items())

    def close(self, timeout_s: float = 10.0) -> None:
        """SIGTERM each process group, SIGKILL what is left after `timeout_s`."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            # The group may hold children (code servers) even when the leader is gone.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self.procs.clear()
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: not self.live_processes(), 5, what="the process groups to end")

    def live_processes(self) -> list[int]:
        """Processes of this stack still alive (zombies, which hold nothing, not counted)."""
        return [pid for pgid in self.groups for pid in group_members(pgid)]

    def __enter__(self) -> DagsterStack:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ---- talking to it --------------------------------------------------------------------
    def graphql(
        self, query: str, variables: Mapping[str, Any] | None = None, *, timeout_s: float = 15.0
    ) -> dict[str, Any]:
        """The `data` of a GraphQL operation; transport or GraphQL errors raise."""
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=body,
            headers={"Content-Type": "application/json", **self.request_headers},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                answer = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DagsterStackError(f"GraphQL request to {self.url} failed: {exc}") from None
        if answer.get("errors"):
            raise DagsterStackError(f"GraphQL errors: {answer['errors']}")
        return answer["data"]
