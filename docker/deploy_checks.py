"""The deploy test's checks of the live page, the lyngsat browser worker and Prometheus
(docker/deploy_test.py runs them against its private stack)."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Any

from deploy_support import DeployTestError, say, wait_until

from ingestion_pipelines.control.commands.launch import trigger
from ingestion_pipelines.dagster_api.client import ControlError, DagsterClient
from ingestion_pipelines.live.auth import mint_token
from ingestion_pipelines.storage.declared import writers_by_table

# The workers are found by the tables their declarations write (defs/<worker_id>/defs.yaml):
# LyngSat's browser worker, and a crawl the read-only webserver must refuse to launch.
LYNGSAT = writers_by_table()["satellite_transponder"]
REFUSED_LAUNCH = writers_by_table()["fear_greed_index"]
# The replay's two LyngSat satellite pages (ingestion_pipelines/sources/lyngsat/data): every
# transponder row of both.
LYNGSAT_ROWS = {"satellite": 2, "satellite_transponder": 168}

# -- webservers and Redis ------------------------------------------------------------------------


def http_status(url: str, auth: tuple[str, str] | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        token = b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def webserver_permissions(stack: Any, sidecars: tuple[str, ...]) -> None:
    """The read-only webserver refuses a launch; the operator webserver wants the password and
    answers nobody but the proxy; Redis wants its password."""
    viewer = DagsterClient(stack.viewer_url)
    try:
        trigger(viewer, REFUSED_LAUNCH)
    except ControlError as exc:
        say(f"read-only webserver refused the launch: {str(exc)[:120]}")
    else:
        raise DeployTestError("the read-only webserver accepted a launchRun mutation")
    no_auth = http_status(f"{stack.operator_url}/server_info")
    wrong = http_status(f"{stack.operator_url}/server_info", (stack.operator_user, "wrong"))
    right = http_status(
        f"{stack.operator_url}/server_info", (stack.operator_user, stack.operator_password)
    )
    if (no_auth, wrong, right) != (401, 401, 200):
        raise DeployTestError(
            f"operator proxy: no password {no_auth}, wrong {wrong}, right {right}"
        )
    say("operator webserver: 401 without or with a wrong password, 200 with it")
    # From inside the stack (a running sidecar's container; one was killed above), without the
    # proxy: nothing answers.
    probe = (
        "import json, urllib.request, urllib.error\n"
        "body = json.dumps({'query': 'mutation { reloadWorkspace { __typename } }'}).encode()\n"
        "req = urllib.request.Request('http://webserver-operator:3000/graphql', data=body,\n"
        "    headers={'Content-Type': 'application/json', 'X-Forwarded-User': 'alice',\n"
        "             'X-Requested-With': 'x'}, method='POST')\n"
        "try:\n    print(urllib.request.urlopen(req, timeout=10).status)\n"
        "except urllib.error.HTTPError as e:\n    print(e.code)\n"
    )
    sidecar = next(name for name in sidecars if stack.running(name))
    direct = stack.podman("exec", stack.container(sidecar), "python3", "-c", probe).strip()
    if direct != "403":
        raise DeployTestError(f"the operator webserver answered a sidecar directly: {direct}")
    no_password = stack.podman(
        "exec",
        stack.container("redis"),
        "env",
        "-u",
        "REDISCLI_AUTH",
        "redis-cli",
        "ping",
        check=False,
    )
    if "NOAUTH" not in no_password:
        raise DeployTestError(f"Redis answered without its password: {no_password.strip()}")
    say("operator webserver: 403 to a container that bypasses the proxy; Redis wants a password")


# -- the live page ------------------------------------------------------------------------------


def _get(port: int, path: str, headers: dict[str, str], timeout: float = 10):
    """An open response to GET `path` on the proxy's live port (the caller closes it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", path, headers=headers)
    return conn, conn.getresponse()


def _status(port: int, path: str, headers: dict[str, str]) -> int:
    conn, response = _get(port, path, headers)
    try:
        return response.status
    finally:
        conn.close()


def _first_tick(port: int, token: str, timeout_s: float) -> dict[str, Any]:
    """The first tick a viewer receives over /stream (SSE), through the proxy."""
    conn, response = _get(
        port,
        "/stream?channel=ticks:*",
        {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
        timeout=timeout_s,
    )
    try:
        if response.status != 200:
            raise DeployTestError(f"live /stream with a viewer token: {response.status}")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = response.readline().decode()
            if not line:
                raise DeployTestError("live /stream ended before a tick")
            if line.startswith("data:") and '"ticks:' in line:
                return json.loads(line[5:])
        raise DeployTestError(f"no tick over live /stream within {timeout_s:.0f} s")
    finally:
        conn.close()


def live_page(port: int, secret: str) -> None:
    """Sign-in required, forged and expired tokens refused, a foreign Origin refused, viewers
    kept off run progress, and a viewer's stream carrying the sidecar's ticks."""
    if _status(port, "/healthz", {}) != 200:
        raise DeployTestError("live /healthz through the proxy is not 200")
    viewer = mint_token(secret, "deploy-test", "viewer", 600)
    forged = mint_token(secrets.token_hex(32), "deploy-test", "operator", 600)
    expired = mint_token(secret, "deploy-test", "viewer", 60, now=time.time() - 3600)
    ticks = "/stream?channel=ticks:*"
    answers = {
        "no token": _status(port, ticks, {}),
        "no token, page": _status(port, "/", {}),
        "forged": _status(port, ticks, {"Authorization": f"Bearer {forged}"}),
        "expired": _status(port, f"{ticks}&token={expired}", {}),
        "foreign Origin": _status(
            port, ticks, {"Authorization": f"Bearer {viewer}", "Origin": "https://evil.example"}
        ),
        "viewer on progress:*": _status(
            port, "/stream?channel=progress:*", {"Authorization": f"Bearer {viewer}"}
        ),
    }
    wanted = {
        "no token": 401,
        "no token, page": 401,
        "forged": 401,
        "expired": 401,
        "foreign Origin": 403,
        "viewer on progress:*": 403,
    }
    if answers != wanted:
        raise DeployTestError(f"live relay through the proxy answered {answers}, want {wanted}")
    say(f"live page: {answers}")
    tick = wait_until("a tick over live /stream", lambda: _first_tick(port, viewer, 30), 150, 2)
    say(f"live page: a viewer token receives ticks from the sidecar ({tick.get('channel')})")


# -- lyngsat in its own container ----------------------------------------------------------------


def _processes_in(container_id: str) -> list[str]:
    """Host processes still in the container's cgroup: `pid command` each."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if container_id in (proc / "cgroup").read_text():
                found.append(f"{proc.name} {(proc / 'comm').read_text().strip()}")
        except OSError:
            continue
    return found


def lyngsat_checks(stack: Any, run: dict[str, Any]) -> None:
    """Its rows are in, and its container ended with no Chromium left behind."""
    for table, want in LYNGSAT_ROWS.items():
        got = int(stack.sql(f"SELECT COUNT(*) FROM `{table}`")[0][0])
        if got != want:
            raise DeployTestError(f"lyngsat: {got} rows in {table}, want {want}")
    tags = {t["key"]: t["value"] for t in run.get("tags") or []}
    container_id = stack.podman("inspect", "-f", "{{.Id}}", tags["docker/container_id"]).strip()
    wait_until(
        "lyngsat's run container exited",
        lambda: (
            stack.podman("inspect", "-f", "{{.State.Status}}", container_id).strip()
            in ("exited", "stopped")
        ),
        60,
    )
    left = _processes_in(container_id)
    if left:
        raise DeployTestError(f"processes outlived lyngsat's run container: {left}")
    say(
        f"lyngsat: {LYNGSAT_ROWS['satellite_transponder']} transponders of "
        f"{LYNGSAT_ROWS['satellite']} satellites through Chromium; no process outlived its container"
    )


# -- Prometheus ------------------------------------------------------------------------------------


PROMETHEUS_JOBS = {"ingest-sidecar", "ingest-live", "ingest-crawls", "prometheus"}


def prometheus_targets(stack: Any) -> None:
    """Inside the prometheus container (it publishes nothing): every scrape target is up, every
    job of PROMETHEUS_JOBS has one, the rules of deploy/prometheus/rules.yml are loaded."""
    api = "/prometheus/api/v1"

    def _json(path: str) -> Any:
        request = f"exec 3<>/dev/tcp/127.0.0.1/9090; printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"
        answer = stack.podman("exec", stack.container("prometheus"), "bash", "-c", request)
        # (text mode: the CRLFs of the HTTP head arrive as LFs)
        head, _, body = answer.replace("\r\n", "\n").partition("\n\n")
        if " 200 " not in head.splitlines()[0]:
            raise DeployTestError(f"prometheus {path}: {head.splitlines()[0]}")
        return json.loads(body)

    def all_up() -> list[dict[str, Any]] | None:
        targets = _json(f"{api}/targets?state=active")["data"]["activeTargets"]
        seen = {t["labels"]["job"] for t in targets}
        down = [t for t in targets if t["health"] != "up"]
        if not seen >= PROMETHEUS_JOBS or down:
            raise DeployTestError(
                f"jobs {sorted(seen)}; not up: "
                f"{[(t['scrapeUrl'], t['health'], t.get('lastError')) for t in down]}"
            )
        return targets

    targets = wait_until("every Prometheus target up", all_up, 120, 3)
    say(f"prometheus: {len(targets)} targets up: {sorted(t['scrapeUrl'] for t in targets)}")
    groups = _json(f"{api}/rules")["data"]["groups"]
    rules = sum(len(g["rules"]) for g in groups)
    if not rules:
        raise DeployTestError("prometheus: no rule loaded from deploy/prometheus/rules.yml")
    say(f"prometheus: {rules} rules in {len(groups)} groups loaded")


def scrape_interval() -> str:
    return os.environ.get("DEPLOY_TEST_SCRAPE_INTERVAL", "5s")
