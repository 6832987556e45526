"""`make deploy-test`: build the images, bring the compose stack up, prove it works, take it down.

Proves, through Dagster's GraphQL API and SQL on the stack's MariaDB:
  1. every scheduled worker's run succeeds, each in its own container (DockerRunLauncher),
     against `ingest replay`, and writes its rows;
  2. feed rows arrive in MariaDB from the replicated sidecars;
  3. killing the sidecar container that owns the Binance feed loses no trade (trade ids stay
     consecutive per symbol) and another replica takes the feed over within 15 s;
  4. restarting the code-location container leaves the daemon and the webservers running, and
     runs succeed afterwards;
  5. the live page through the proxy, and Prometheus with every target up (docker/deploy_checks.py);
  6. `lyngsat` runs Chromium in its own run container: every transponder row, no process left;
  7. the read-only webserver refuses a mutation; the operator webserver answers only with the
     password, through the proxy (a container going to it directly gets 403); Redis wants its
     password;
  8. the stack comes down clean (no container, run container, network or volume left).
Prints a timing table. Runs a private copy of docker/compose.yaml (own project name, network,
ports, socket and random secrets), so it never touches a stack started with docker/stack.sh.
Time-bounded (DEPLOY_TEST_TIMEOUT_S, default 1500 s) and it always cleans up.

Run with the project's virtualenv: `.venv/bin/python docker/deploy_test.py`.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import deploy_checks  # noqa: E402
from deploy_support import DeployTestError, free_port, say, sh  # noqa: E402
from deploy_support import wait_until as _wait_until  # noqa: E402

from ingestion_pipelines.control.commands.launch import trigger  # noqa: E402
from ingestion_pipelines.dagster_api.client import ControlError, DagsterClient  # noqa: E402
from ingestion_pipelines.demo.run import recorded_partitions  # noqa: E402
from ingestion_pipelines.vnmarket.calendar import previous_trading_day  # noqa: E402
from ingestion_pipelines.sources.base import (  # noqa: E402
    TradingDayPartitions,
    first_run_waves,
    source_classes,
)
from ingestion_pipelines.config.workers import catalogue  # noqa: E402
from ingestion_pipelines.storage.declared import writers_by_table  # noqa: E402

TAKEOVER_LIMIT_S = 15.0
# Per batch of runs; a loaded machine (2 shared cores) may need more: DEPLOY_TEST_RUN_TIMEOUT_S.
RUN_TIMEOUT_S = float(os.environ.get("DEPLOY_TEST_RUN_TIMEOUT_S", "300"))
HEALTHY_SERVICES = (
    "mariadb",
    "postgres",
    "redis",
    "replay",
    "codeserver",
    "webserver",
    "webserver-operator",
    "webserver-internal",
    "proxy",
    "daemon",
    "live",
    "metrics",
    "prometheus",
)
SIDECARS = ("sidecar-1", "sidecar-2")
# Sidecars serve /healthz (their compose health check) from ingestion_pipelines.sidecar.health.
SIDECARS_HAVE_HEALTH = importlib.util.find_spec("ingestion_pipelines.sidecar.health") is not None
FEED = "binance_trades"
# A crawl run once the code location restarted: the worker declaring the crypto market snapshot.
AFTER_RESTART = writers_by_table()["crypto_market_snapshot"]


def wait_until(what: str, probe, timeout_s: float, interval_s: float = 1.0):
    """deploy_support.wait_until, a refused GraphQL call (ControlError) meaning "not yet"."""
    return _wait_until(what, probe, timeout_s, interval_s, errors=(ControlError,))


class Stack:
    """A private copy of the compose stack, driven through docker/stack.sh and podman."""

    def __init__(self, workdir: Path):
        self.dir = workdir
        suffix = secrets.token_hex(3)
        self.project = f"ingestdt{suffix}"
        self.network = f"ingestdt{suffix}"
        self.viewer_port = free_port()
        self.operator_port = free_port()
        self.live_port = free_port()
        self.live_secret = secrets.token_hex(32)
        self.operator_user = "operator"
        self.operator_password = secrets.token_urlsafe(16)
        self.db_password = secrets.token_urlsafe(16)
        self.env = {
            **os.environ,
            "CONTAINERS_CONF": str(HERE / "podman" / "containers.conf"),
            "STACK_DIR": str(workdir),
            "PROJECT": self.project,
            "STACK_STATE": str(workdir / "state"),
            "STACK_LOG": str(workdir / "compose.log"),
            "STACK_REPLAY": "1",
        }
        for name in ("compose.yaml", "compose.replay.yaml"):
            shutil.copy(HERE / name, workdir / name)
        image = os.environ.get("INGEST_IMAGE", "localhost/ingestion-pipelines:latest")
        values = {
            "INGEST_DB_PASSWORD": self.db_password,
            "DAGSTER_DB_PASSWORD": secrets.token_urlsafe(16),
            "OPERATOR_USER": self.operator_user,
            "OPERATOR_PASSWORD": self.operator_password,
            "INGEST_REDIS_PASSWORD": secrets.token_urlsafe(16),
            "INGEST_PROXY_SECRET": secrets.token_urlsafe(24),
            "INGEST_VIEWER_BIND": "127.0.0.1",
            "INGEST_VIEWER_PORT": str(self.viewer_port),
            "INGEST_OPERATOR_BIND": "127.0.0.1",
            "INGEST_OPERATOR_PORT": str(self.operator_port),
            "INGEST_LIVE_JWT_SECRET": self.live_secret,
            "INGEST_LIVE_BIND": "127.0.0.1",
            "INGEST_LIVE_PORT": str(self.live_port),
            "INGEST_SCRAPE_INTERVAL": deploy_checks.scrape_interval(),
            "INGEST_PROMETHEUS_RULES": str(ROOT / "deploy" / "prometheus" / "rules.yml"),
            "DOCKER_SOCKET": str(workdir / "podman.sock"),
            "COMPOSE_NETWORK": self.network,
            "INGEST_IMAGE": image,
            "INFRA_IMAGE": os.environ.get("INFRA_IMAGE", "localhost/ingest-infra:latest"),
        }
        env_file = workdir / ".env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        env_file.chmod(0o600)

    # -- podman ---------------------------------------------------------------------------

    def stack(self, *args: str, timeout: float = 600) -> str:
        return sh("bash", str(HERE / "stack.sh"), *args, env=self.env, timeout=timeout)

    def podman(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        return sh("podman", *args, check=check, env=self.env, timeout=timeout)

    def container(self, service: str) -> str:
        ids = self.podman(
            "ps",
            "-aq",
            "--filter",
            f"label=io.podman.compose.project={self.project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        ).split()
        if len(ids) != 1:
            raise DeployTestError(f"expected one container for {service}, found {ids}")
        return ids[0]

    def healthy(self, service: str) -> bool:
        done = subprocess.run(
            ["podman", "healthcheck", "run", self.container(service)],
            capture_output=True,
            env=self.env,
            timeout=60,
            check=False,
        )
        return done.returncode == 0

    def started_at(self, service: str) -> str:
        return self.podman("inspect", "-f", "{{.State.StartedAt}}", self.container(service))

    def running(self, service: str) -> bool:
        ctr = self.container(service)
        return self.podman("inspect", "-f", "{{.State.Running}}", ctr).strip() == "true"

    def logs(self, service: str, tail: int | None = None) -> str:
        """A container's output, stdout and stderr (where the log lines go) together."""
        args = ["podman", "logs", *(["--tail", str(tail)] if tail else []), self.container(service)]
        done = subprocess.run(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )
        return done.stdout

    def sql(self, query: str) -> list[list[str]]:
        out = self.podman(
            "exec",
            "-e",
            f"MYSQL_PWD={self.db_password}",
            self.container("mariadb"),
            "mariadb",
            "-h127.0.0.1",
            "-uingest",
            "ingest",
            "-N",
            "-B",
            "-e",
            query,
        )
        return [line.split("\t") for line in out.splitlines()]

    def redis(self, *args: str) -> str:
        return self.podman("exec", self.container("redis"), "redis-cli", *args).strip()

    def leftovers(self) -> list[str]:
        """Containers, networks and volumes of this stack still present."""
        found = self.podman(
            "ps", "-a", "--format", "{{.Names}}", "--filter", f"network={self.network}"
        ).split()
        found += self.podman(
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            f"label=io.podman.compose.project={self.project}",
        ).split()
        found += [
            f"volume {v}"
            for v in self.podman(
                "volume", "ls", "-q", "--filter", f"label=io.podman.compose.project={self.project}"
            ).split()
        ]
        artifacts = f"{self.network}-artifacts"  # made by the runs' launches, not by compose
        if artifacts in self.podman("volume", "ls", "-q").split():
            found.append(f"volume {artifacts}")
        if self.network in self.podman("network", "ls", "--format", "{{.Name}}").split():
            found.append(f"network {self.network}")
        return sorted(set(found))

    # -- HTTP -----------------------------------------------------------------------------

    @property
    def viewer_url(self) -> str:
        return f"http://127.0.0.1:{self.viewer_port}"

    @property
    def operator_url(self) -> str:
        return f"http://127.0.0.1:{self.operator_port}"

    def operator_client(self) -> DagsterClient:
        return DagsterClient(
            f"http://{self.operator_user}:{self.operator_password}@127.0.0.1:{self.operator_port}"
        )


# -- checks ---------------------------------------------------------------------------------


def scheduled_workers() -> dict[str, type | None]:
    """Every scheduled worker and its source class (None: a declared source whose hook owns its
    asset, lyngsat: checked by deploy_checks)."""
    sources = source_classes()
    return {w: sources.get(w) for w, spec in catalogue().items() if spec.kind == "scheduled"}


def last_weekday_partition(source: type | None) -> str | None:
    """For a partitioned source, the newest complete weekday in its timezone (weekends may have
    no data by design: expected silence); None when unpartitioned."""
    if source is None or source.partitions is None:
        return None
    today = datetime.now(ZoneInfo(source.partitions.timezone)).date()
    if isinstance(source.partitions, TradingDayPartitions):  # partitions only on trading days
        return previous_trading_day(today).isoformat()
    day = today - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day.isoformat()


def run_every_scheduled_worker(stack: Stack, timings: dict[str, float], t_up: float) -> None:
    """Every scheduled worker once, in waves: a worker after those whose rows it reads."""
    client = stack.operator_client()
    workers = scheduled_workers()
    launched: dict[str, str] = {}
    for wave in first_run_waves(list(workers)):
        deadline = time.monotonic() + RUN_TIMEOUT_S  # each wave its own budget
        pending = launch_wave(client, wave, workers)
        launched.update(pending)
        while pending:
            if time.monotonic() > deadline:
                raise DeployTestError(f"runs not finished in {RUN_TIMEOUT_S:.0f} s: {pending}")
            for worker, run_id in list(pending.items()):
                if run_succeeded(stack, client, worker, run_id, timings, t_up):
                    del pending[worker]
            time.sleep(2)
    check_rows(stack, workers, launched)


def launch_wave(client, wave: list[str], workers: dict[str, type | None]) -> dict[str, str]:
    # a partitioned YAML source's replay holds one recorded day: run that day (as the demo does)
    recorded = recorded_partitions()
    launched = {}
    for worker in wave:
        partition = recorded.get(worker) or last_weekday_partition(workers[worker])
        launched[worker] = wait_until(
            f"launch {worker}",
            lambda w=worker, p=partition: trigger(client, w, partition=p)["run_id"],
            120,
            3,
        )
        say(f"launched {worker}: run {launched[worker]}")
    return launched


def run_succeeded(stack: Stack, client, worker: str, run_id: str, timings, t_up) -> bool:
    """Whether the run ended in success (checked); raises when it failed; False while it runs."""
    run = client.run(run_id)
    if run["status"] == "SUCCESS":
        timings.setdefault("first run success", time.monotonic() - t_up)
        check_run_container(stack, run)
        if worker == deploy_checks.LYNGSAT:
            deploy_checks.lyngsat_checks(stack, run)
        say(f"{worker}: SUCCESS in its own container")
        return True
    if run["status"] in ("FAILURE", "CANCELED"):
        events = client.run_events(run_id, limit=200)
        errors = [e.get("message") for e in events if "FAILURE" in str(e)][-5:]
        raise DeployTestError(f"{worker}: run {run_id} {run['status']}: {errors}")
    return False


def check_rows(stack: Stack, workers: dict[str, type | None], launched: dict[str, str]) -> None:
    """Each source's run logged, and its table holds rows."""
    for worker, source in workers.items():
        if source is None:
            continue
        table = source.table.name
        logged = stack.sql(
            f"SELECT COUNT(*) FROM execution_log WHERE run_id = '{launched[worker]}'"
        )
        rows = stack.sql(f"SELECT COUNT(*) FROM `{table}`")
        if int(rows[0][0]) == 0:
            raise DeployTestError(f"{worker}: its run succeeded but `{table}` is empty")
        say(f"{worker}: {rows[0][0]} rows in {table}, {logged[0][0]} log lines of its run")


def check_run_container(stack: Stack, run: dict[str, Any]) -> None:
    """The run has its own container, of the project image, labelled with its run id."""
    tags = {t["key"]: t["value"] for t in run.get("tags") or []}
    container_id = tags.get("docker/container_id")
    if not container_id:
        raise DeployTestError(f"run {run['runId']} has no docker/container_id tag: {tags}")
    label = stack.podman("inspect", "-f", '{{index .Config.Labels "dagster/run_id"}}', container_id)
    if label.strip() != run["runId"]:
        raise DeployTestError(f"container {container_id[:12]} is not run {run['runId']}'s")


def feed_rows(stack: Stack) -> int:
    return int(stack.sql("SELECT COUNT(*) FROM trade_tick WHERE source = 'binance'")[0][0])


def gaps(stack: Stack) -> dict[str, int]:
    """Per Binance symbol, trade ids missing between the first and last stored (want 0)."""
    rows = stack.sql(
        "SELECT symbol, MAX(CAST(trade_id AS DECIMAL(30,0))) - MIN(CAST(trade_id AS DECIMAL(30,0)))"
        " + 1 - COUNT(*) FROM trade_tick WHERE source = 'binance' GROUP BY symbol"
    )
    return {symbol: int(float(missing)) for symbol, missing in rows}


def lock_owner(stack: Stack) -> tuple[str, str] | None:
    """(lock key, token) of a Binance ownership lease, or None when nobody holds one."""
    keys = sorted(stack.redis("--scan", "--pattern", f"ingest:lock:{FEED}*").split())
    if not keys:
        return None
    token = stack.redis("GET", keys[0])
    return (keys[0], token) if token else None


def sidecar_with_token(stack: Stack, token: str) -> str | None:
    for service in SIDECARS:
        if token[:8] in stack.logs(service):
            return service
    return None


def sidecar_failover(stack: Stack, timings: dict[str, float]) -> None:
    wait_until("Binance trades in MariaDB", lambda: feed_rows(stack) > 0, 120, 2)
    say(f"feed rows arriving: {feed_rows(stack)} Binance trades")
    key, token = wait_until("a Binance ownership lease", lambda: lock_owner(stack), 60)
    owner = wait_until("the lease holder's container", lambda: sidecar_with_token(stack, token), 30)
    before = feed_rows(stack)
    say(f"{owner} owns {key}; killing it")
    killed_at = time.monotonic()
    stack.podman("kill", stack.container(owner))

    def taken_over():
        held = lock_owner(stack)
        return held if held and held[1] != token else None

    _, new_token = wait_until("takeover of the feed", taken_over, TAKEOVER_LIMIT_S + 5, 0.25)
    takeover_s = time.monotonic() - killed_at
    timings["sidecar takeover"] = takeover_s
    new_owner = wait_until("new holder", lambda: sidecar_with_token(stack, new_token), 30)
    if takeover_s > TAKEOVER_LIMIT_S:
        raise DeployTestError(f"takeover took {takeover_s:.1f} s (limit {TAKEOVER_LIMIT_S:.0f})")
    say(f"{new_owner} took the feed over after {takeover_s:.1f} s")
    wait_until("trades after the takeover", lambda: feed_rows(stack) > before + 20, 60, 2)
    missing = wait_until(
        "no missing trade id",
        lambda: (lambda g: g if not any(g.values()) else None)(gaps(stack)),
        90,
        3,
    )
    say(f"no trade lost: per-symbol ids consecutive {sorted(missing)}; {feed_rows(stack)} trades")


def code_location_restart(stack: Stack) -> None:
    daemon_started = stack.started_at("daemon")
    web_started = stack.started_at("webserver")
    say("restarting the code-location container")
    stack.podman("restart", "-t", "10", stack.container("codeserver"))
    for service in ("daemon", "webserver", "webserver-operator"):
        if not stack.running(service):
            raise DeployTestError(f"{service} stopped when the code location restarted")
    if deploy_checks.http_status(f"{stack.viewer_url}/server_info") != 200:
        raise DeployTestError("the read-only webserver stopped answering during the restart")
    wait_until("code server healthy again", lambda: stack.healthy("codeserver"), 120, 2)
    if stack.started_at("daemon") != daemon_started or stack.started_at("webserver") != web_started:
        raise DeployTestError("the daemon or the webserver restarted with the code location")
    client = stack.operator_client()

    def run_after_restart():
        result = trigger(client, AFTER_RESTART, wait=True, timeout_s=RUN_TIMEOUT_S)
        return result if result.get("status") == "SUCCESS" else None

    wait_until("a run after the code-location restart", run_after_restart, 2 * RUN_TIMEOUT_S, 5)
    say("code location restarted under a running daemon and webservers; runs continue")


# -- main -----------------------------------------------------------------------------------


def main() -> int:
    timeout_s = float(os.environ.get("DEPLOY_TEST_TIMEOUT_S", "1500"))

    def out_of_time(*_):
        raise DeployTestError(f"deploy test exceeded {timeout_s:.0f} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.signal(signal.SIGTERM, out_of_time)
    signal.alarm(int(timeout_s))
    timings: dict[str, float] = {}
    workdir = Path(tempfile.mkdtemp(prefix="ingest-deploy-test."))
    stack = None
    failed = True
    try:
        t0 = time.monotonic()
        say("building images (make images)")
        subprocess.run(["bash", str(HERE / "images.sh")], check=True, timeout=1200)
        timings["image build"] = time.monotonic() - t0

        stack = Stack(workdir)
        t_up = time.monotonic()
        say(
            f"stack up: project {stack.project}, viewer :{stack.viewer_port}, operator :{stack.operator_port}"
        )
        stack.stack("up")
        for service in HEALTHY_SERVICES + (SIDECARS if SIDECARS_HAVE_HEALTH else ()):
            wait_until(f"{service} healthy", lambda s=service: stack.healthy(s), 300, 2)
        timings["stack up (healthy)"] = time.monotonic() - t_up
        say("every service healthy")

        deploy_checks.live_page(stack.live_port, stack.live_secret)
        deploy_checks.prometheus_targets(stack)
        run_every_scheduled_worker(stack, timings, t_up)
        sidecar_failover(stack, timings)
        deploy_checks.webserver_permissions(stack, SIDECARS)
        code_location_restart(stack)

        t_down = time.monotonic()
        stack.stack("down", "-v")
        left = stack.leftovers()
        if left:
            raise DeployTestError(f"the stack did not come down clean: {left}")
        timings["stack down"] = time.monotonic() - t_down
        stack = None
        failed = False
    finally:
        signal.alarm(0)
        if stack is not None:
            if failed:
                dump_logs(stack)
            try:
                stack.stack("down", "-v", timeout=300)
            except Exception as exc:  # noqa: BLE001 - report, keep cleaning
                say(f"cleanup: {exc}")
        shutil.rmtree(workdir, ignore_errors=True)
        print_timings(timings)
    say("PASSED")
    return 0


def dump_logs(stack: Stack) -> None:
    for service in (*HEALTHY_SERVICES, *SIDECARS):
        try:
            logs = stack.logs(service, tail=25)
        except DeployTestError:
            continue
        print(f"---- {service} (last lines)\n{logs}", file=sys.stderr)


def print_timings(timings: dict[str, float]) -> None:
    if not timings:
        return
    print("\n  deploy-test timings")
    for name, seconds in timings.items():
        print(f"    {name:<22} {seconds:7.1f} s")


if __name__ == "__main__":
    sys.exit(main())
