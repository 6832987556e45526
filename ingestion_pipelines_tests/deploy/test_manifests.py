"""The deployment files: Kubernetes manifests and Helm values validated offline against the
Kubernetes API schemas bundled with kubernetes-validate, and the compose stack's promises
(health checks, restart policies, secrets only from the env file)."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from ingestion_pipelines.cli import build_parser
from ingestion_pipelines.config.workers import catalogue
from ingestion_pipelines.dagster_api.client import LOCATION

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.30.0"  # oldest Kubernetes release the manifests must run on


def manifests() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "dagster-values.yaml":
            continue
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def by_kind(kind: str) -> list[dict]:
    return [doc for doc in manifests() if doc["kind"] == kind]


def manifest(kind: str, name: str) -> dict:
    (doc,) = [d for d in by_kind(kind) if d["metadata"]["name"] == name]
    return doc


def helm_values() -> dict:
    return yaml.safe_load((K8S / "dagster-values.yaml").read_text())


@pytest.mark.parametrize("version", [K8S_VERSION, kubernetes_validate.utils.latest_version()])
def test_every_manifest_is_valid_kubernetes_strictly(version):
    docs = manifests()
    assert {d["kind"] for d in docs} >= {
        "Deployment",
        "PodDisruptionBudget",
        "ConfigMap",
        "NetworkPolicy",
        "Ingress",
        "HorizontalPodAutoscaler",
    }
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validation_rejects_a_broken_manifest():
    deployment = copy.deepcopy(manifest("Deployment", "ingest-sidecar"))
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    deployment = copy.deepcopy(manifest("Deployment", "ingest-sidecar"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_sidecar_is_replicated_probed_bounded_and_covered_by_a_disruption_budget():
    deployment = manifest("Deployment", "ingest-sidecar")
    (budget,) = by_kind("PodDisruptionBudget")
    (config,) = by_kind("ConfigMap")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]

    replicas = manifest("HorizontalPodAutoscaler", "ingest-sidecar")["spec"]["minReplicas"]
    assert replicas >= 2
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert budget["spec"].get("maxUnavailable", 0) < replicas

    port = int(config["data"]["INGEST_SIDECAR_HTTP_PORT"])
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert named.get(get["port"], get["port"]) == port

    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert "memory" in container["resources"]["limits"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True

    # The container runs a real `ingest` command.
    assert container["command"][:2] == ["ingest", "sidecar"]
    build_parser().parse_args(container["command"][1:])


def test_secrets_are_only_referenced_never_written():
    assert not by_kind("Secret")
    for deployment in by_kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if container["image"].startswith("registry.example.com/ingestion-pipelines:"):
                assert {"secretRef": {"name": "ingest-secrets"}} in container["envFrom"]
    for path in K8S.glob("*.yaml"):
        text = path.read_text()
        assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", text), f"{path.name}: a URL with a password"
        for doc in yaml.safe_load_all(text):
            assert not password_values(doc), f"{path.name}: {password_values(doc)}"


def password_values(node, path="") -> list[str]:
    """Keys naming a password or token that hold a literal string."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}"
            if re.search(r"password|token|api_?key", str(key), re.I) and isinstance(value, str):
                found.append(here)
            found += password_values(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += password_values(value, f"{path}[{i}]")
    return found


def test_helm_values_use_the_k8s_run_launcher_external_postgres_and_the_project_image():
    values = helm_values()
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False
    assert values["postgresql"]["postgresqlHost"]
    driver = values["postgresql"]["postgresqlScheme"].partition("+")[2]
    assert importlib.util.find_spec(driver) is not None, "the image's PostgreSQL driver"
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]

    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    module = args[args.index("--module-name") + 1]
    assert importlib.util.find_spec(module) is not None
    assert args[args.index("--location-name") + 1] == LOCATION
    servers = values["dagsterWebserver"]["workspace"]["servers"]
    assert servers == [{"host": deployment["name"], "port": deployment["port"], "name": LOCATION}]
    assert deployment["envSecrets"] == [{"name": "ingest-secrets"}]

    limits = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert {"key": "ingest/worker", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in (
        limits["tagConcurrencyLimits"]
    )


def test_helm_values_pod_settings_are_valid_kubernetes():
    """The Kubernetes snippets inside the values, validated as the Pods the chart makes of them."""
    values = helm_values()
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    run = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    image = deployment["image"]
    pods = [
        {
            "securityContext": deployment["podSecurityContext"],
            "containers": [
                {
                    "name": "user-code",
                    "image": f"{image['repository']}:{image['tag']}",
                    "imagePullPolicy": image["pullPolicy"],
                    "args": ["dagster", "api", "grpc", *deployment["dagsterApiGrpcArgs"]],
                    "resources": deployment["resources"],
                    "envFrom": [{"secretRef": s} for s in deployment["envSecrets"]]
                    + [{"configMapRef": c} for c in deployment["envConfigMaps"]],
                }
            ],
        },
        {
            **run["podSpecConfig"],
            "containers": [{"name": "run", "image": "x:1", **run["containerConfig"]}],
        },
    ]
    for spec in pods:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


# ---- compose --------------------------------------------------------------------------------


def compose(name: str = "compose.yaml") -> dict:
    return yaml.safe_load((ROOT / "docker" / name).read_text())


def test_every_compose_service_has_a_health_check_and_a_restart_policy():
    services = compose()["services"]
    replay = compose("compose.replay.yaml")["services"]["replay"]
    services = {**services, "replay": replay}
    assert {"codeserver", "webserver", "webserver-operator", "webserver-internal", "proxy"} <= (
        services.keys()
    )
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name}: no health check"
        assert service.get("restart") in ("unless-stopped", "always"), f"{name}: restart policy"


def test_compose_topology_promises():
    services = compose()["services"]
    sidecars = [n for n, s in services.items() if s.get("command") == ["ingest", "sidecar"]]
    assert len(sidecars) >= 2
    assert "--read-only" in services["webserver"]["command"]
    assert "--read-only" not in services["webserver-operator"]["command"]
    for name, service in services.items():
        assert name == "proxy" or "ports" not in service, f"{name}: published, not via the proxy"
    assert services["codeserver"]["command"][:3] == ["dagster", "code-server", "start"]
    workspace = yaml.safe_load((ROOT / "docker" / "workspace.yaml").read_text())
    (server,) = workspace["load_from"]
    assert server["grpc_server"]["host"] == "codeserver"
    assert server["grpc_server"]["location_name"] == LOCATION
    instance = yaml.safe_load((ROOT / "docker" / "dagster.yaml").read_text())
    assert instance["run_launcher"]["class"] == "DockerRunLauncher"
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"


def test_the_stack_instance_is_valid_dagster_config_and_dequeues_as_the_local_one():
    """docker/dagster.yaml passes Dagster's own instance validation (which refuses `run_queue`
    next to an explicit `run_coordinator`), and its coordinator dequeues as the local instance's
    `run_queue` says: every second, several runs launched at once."""
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.run_coordinator import QueuedRunCoordinator

    stack, _ = dagster_instance_config(str(ROOT / "docker"), "dagster.yaml")
    local, _ = dagster_instance_config(str(ROOT), "dagster.yaml")
    assert "run_queue" not in stack
    dequeue = local["run_queue"]
    assert dequeue["dequeue_interval_seconds"] == 1 and dequeue["dequeue_use_threads"] is True
    coordinator = QueuedRunCoordinator.from_config_value(None, stack["run_coordinator"]["config"])
    assert coordinator.dequeue_interval_seconds == dequeue["dequeue_interval_seconds"]
    assert coordinator.dequeue_use_threads == dequeue["dequeue_use_threads"]
    assert coordinator.dequeue_num_workers == dequeue["dequeue_num_workers"]
    # the run limits stay the concurrency block's, the same in both instances
    assert stack["concurrency"] == local["concurrency"]
    assert stack["concurrency"]["runs"]["max_concurrent_runs"] == 6
    # Kubernetes: the Helm chart's names for the same settings
    helm = helm_values()["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert helm["dequeueIntervalSeconds"] == dequeue["dequeue_interval_seconds"]
    assert helm["dequeueUseThreads"] == dequeue["dequeue_use_threads"]
    assert helm["dequeueNumWorkers"] == dequeue["dequeue_num_workers"]


def test_compose_takes_every_secret_from_the_env_file():
    text = (ROOT / "docker" / "compose.yaml").read_text()
    example = (ROOT / "docker" / ".env.example").read_text()
    for secret in (
        "INGEST_DB_PASSWORD",
        "DAGSTER_DB_PASSWORD",
        "OPERATOR_PASSWORD",
        "INGEST_REDIS_PASSWORD",
        "INGEST_PROXY_SECRET",
    ):
        assert f"${{{secret}:?" in text, f"{secret} must come from docker/.env, no default"
        assert f"{secret}=" in example
    assert "docker/.env" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_production_stack_uses_the_live_sources_and_the_replay_is_an_overlay():
    production = compose()
    assert "replay" not in production["services"]
    assert "replay:" not in json.dumps(production), "a worker pointed at the replay"
    assert "__BASE_URL" not in (ROOT / "docker" / "dagster.yaml").read_text()
    overlay = compose("compose.replay.yaml")["services"]
    assert overlay["replay"]["command"][:2] == ["ingest", "replay"]
    build_parser().parse_args(overlay["replay"]["command"][1:])
    # Runs get the replay URLs through the code location's container context; the daemon
    # launching them must have every one of those variables.
    context = json.loads(overlay["codeserver"]["environment"]["DAGSTER_CONTAINER_CONTEXT"])
    names = context["docker"]["env_vars"]
    assert names and set(names) <= overlay["daemon"]["environment"].keys()
    # every scheduled worker of the project (the sources and lyngsat's own asset); tests
    # register workers of their own (test_config's chain_test), which no overlay serves
    scheduled = {
        w
        for w, spec in catalogue().items()
        if spec.kind == "scheduled" and spec.settings.__module__.startswith("ingestion_pipelines.")
    }
    from ingestion_pipelines.replay import routes  # + second providers' base URL settings

    routes.load_replays()
    expected = {f"INGEST_{w.upper()}__BASE_URL" for w in scheduled} | set(routes.SETTING_PATHS)
    expected |= set(routes.SETTING_VALUES)  # + what the replay's recordings hold (a fund subset)
    assert "INGEST_VN_INDICES__VIETCAP_BASE_URL" in expected
    assert expected == set(names)
    for sidecar in ("sidecar-1", "sidecar-2"):
        assert "INGEST_BINANCE_TRADES__BASE_URL" in overlay[sidecar]["environment"]


# ---- issue 22 §1: identity, exposure, Redis ----------------------------------------------------


def test_only_the_proxy_reaches_the_operator_webserver_and_the_app_uses_the_internal_one():
    services = compose()["services"]
    operator = services["webserver-operator"]
    assert operator["command"][2] == "ingestion_pipelines.control.operator_webserver"
    assert operator["environment"]["INGEST_PROXY_SECRET"].startswith("${INGEST_PROXY_SECRET:?")
    assert (
        services["proxy"]["environment"]["PROXY_SECRET"]
        == operator["environment"]["INGEST_PROXY_SECRET"]
    )
    assert services["proxy"]["networks"] == ["front"], "the proxy sits on the front network only"
    internal = services["webserver-internal"]
    assert "--internal" in internal["command"]
    # every app container (sidecars, runs through the daemon's env) talks to the internal one
    app_env = services["sidecar-1"]["environment"]
    assert app_env["INGEST_DAGSTER_URL"] == "http://webserver-internal:3000"
    assert services["daemon"]["environment"]["INGEST_DAGSTER_URL"] == app_env["INGEST_DAGSTER_URL"]
    assert "DAGSTER_PG_URL" not in app_env, "sidecars never get the instance database"
    sidecar_only = {"INGEST_SIDECAR_HTTP_PORT", "INGEST_SIDECAR_HTTP_HOST"}
    assert {k: v for k, v in app_env.items() if k not in sidecar_only} == {
        k: v
        for k, v in services["daemon"]["environment"].items()
        if k.startswith("INGEST_") and k != "INGEST_DOCKER_NETWORK"
    }
    template = (ROOT / "docker" / "infra" / "nginx-operator.conf.template").read_text()
    assert 'proxy_set_header X-Ingest-Proxy-Secret "@PROXY_SECRET@"' in template
    assert "proxy_set_header X-Forwarded-User $remote_user" in template
    assert "X-Requested-With" not in template, "the proxy must not vouch for cross-site requests"


def test_the_stack_publishes_on_loopback_unless_told_and_redis_wants_a_password():
    services = compose()["services"]
    for port in services["proxy"]["ports"]:
        assert port.startswith("${INGEST_") and "_BIND:-127.0.0.1}:" in port, port
    redis = services["redis"]
    assert redis["environment"]["REDISCLI_AUTH"].startswith("${INGEST_REDIS_PASSWORD:?")
    url = services["sidecar-1"]["environment"]["INGEST_REDIS_URL"]
    assert url.startswith("redis://:${INGEST_REDIS_PASSWORD:?")
    script = (ROOT / "docker" / "infra" / "redis.sh").read_text()
    assert "--protected-mode yes" in script and "requirepass" in script
    assert "protected-mode no" not in script


def test_a_redis_url_password_never_shows():
    from ingestion_pipelines.core.redaction import redact, redact_url

    url = "redis://:Zq8secretRedis@redis:6379/0"
    assert "Zq8secretRedis" not in redact_url(url)
    assert "Zq8secretRedis" not in redact(f"cannot connect to {url}: refused")


def _stack_up(tmp_path, env_text: str):
    import subprocess

    (tmp_path / ".env").write_text(env_text)
    env = {"PATH": "/usr/bin:/bin", "STACK_DIR": str(tmp_path), "STACK_STATE": str(tmp_path)}
    return subprocess.run(
        ["bash", str(ROOT / "docker" / "stack.sh"), "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_stack_sh_refuses_the_placeholder_passwords_of_env_example(tmp_path):
    example = (ROOT / "docker" / ".env.example").read_text()
    done = _stack_up(tmp_path, example)
    assert done.returncode == 1
    for name in ("INGEST_DB_PASSWORD", "OPERATOR_PASSWORD", "INGEST_REDIS_PASSWORD"):
        assert f"stack: {name} in" in done.stderr and "set a real secret" in done.stderr


def test_stack_sh_refuses_wide_publication_without_tls(tmp_path):
    real = re.sub(
        r"=change-me-[\w-]+", "=Q3mnv8Tr0ngEnough55", (ROOT / "docker" / ".env.example").read_text()
    )
    done = _stack_up(tmp_path, real + "INGEST_OPERATOR_BIND=0.0.0.0\n")
    assert done.returncode == 1
    assert "INGEST_OPERATOR_BIND=0.0.0.0 publishes beyond this host" in done.stderr
    assert "set a real secret" not in done.stderr


# ---- Kubernetes: the identity layer, network policies, autoscaling, ingress -------------------

WRAPPER = ["python", "-m", "ingestion_pipelines.control.operator_webserver"]


def _webserver_containers():
    for deployment in by_kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            command = container.get("command", [])
            if command[:3] == WRAPPER or command[:1] == ["dagster-webserver"]:
                yield deployment["metadata"]["name"], container


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_no_writable_webserver_is_reachable_except_through_the_proxy():
    values = helm_values()["dagsterWebserver"]
    assert values["replicaCount"] == 0 and not values["enableReadOnly"], "the chart's stock one"
    roles = {}
    for name, container in _webserver_containers():
        command = container["command"]
        if "--read-only" in command or "--internal" in command:
            roles[name] = "read-only" if "--read-only" in command else "internal"
            continue
        # writable: the wrapper, on loopback, with the shared secret, no port of its own
        assert command[:3] == WRAPPER, f"{name}: a writable stock webserver"
        assert _option(command, "-h") == "127.0.0.1" and "ports" not in container
        env = {e["name"] for e in container["env"]}
        assert "INGEST_PROXY_SECRET_FILE" in env
        roles[name] = "operator"
    assert sorted(roles.values()) == ["internal", "operator", "read-only"]
    pod = manifest("Deployment", "ingest-webserver-operator")["spec"]["template"]["spec"]
    proxy = next(c for c in pod["containers"] if c["command"] == ["proxy.sh"])
    assert {e["name"] for e in proxy["env"]} >= {"PROXY_SECRET", "OPERATOR_PASSWORD"}
    webserver = next(c for c in pod["containers"] if c["command"][:3] == WRAPPER)
    upstream = {e["name"]: e.get("value") for e in proxy["env"]}["UPSTREAM"]
    assert upstream == f"127.0.0.1:{_option(webserver['command'], '-p')}", "the proxy's upstream"
    # sidecars and runs use the internal endpoint
    (config,) = by_kind("ConfigMap")
    internal = manifest("Service", "ingest-dagster-internal")
    assert config["data"]["INGEST_DAGSTER_URL"] == f"http://{internal['metadata']['name']}:80"
    assert internal["spec"]["selector"] == {"app.kubernetes.io/name": "ingest-webserver-internal"}


def test_network_policies_close_everything_then_open_by_name():
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind("NetworkPolicy")}
    deny = policies["ingest-default-deny-ingress"]
    assert (
        deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and not deny.get("ingress")
    )
    internal = policies["ingest-internal-webserver"]
    sources = [f["podSelector"]["matchLabels"] for f in internal["ingress"][0]["from"]]
    assert {"app.kubernetes.io/name": "ingest-sidecar"} in sources
    assert {"app.kubernetes.io/component": "run_worker"} in sources
    front = policies["ingest-from-ingress-controller"]
    opened = {p["port"] for p in front["ingress"][0]["ports"]}
    operator_pod = manifest("Deployment", "ingest-webserver-operator")["spec"]["template"]["spec"]
    exposed = {p["containerPort"] for c in operator_pod["containers"] for p in c.get("ports", [])}
    assert exposed == {8080} and 8080 in opened  # the proxy only


def test_the_ingress_routes_to_services_that_exist_and_the_sidecars_autoscale():
    (ingress,) = by_kind("Ingress")
    services = {s["metadata"]["name"]: s for s in by_kind("Service")}
    backends = set()
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            service = path["backend"]["service"]
            ports = {p["name"] for p in services[service["name"]]["spec"]["ports"]}
            assert service["port"]["name"] in ports
            backends.add(service["name"])
    assert backends == {"ingest-webserver-operator", "ingest-webserver-viewer", "ingest-live"}
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    assert hosts <= set(ingress["spec"]["tls"][0]["hosts"]), "every host over TLS"
    live = manifest("Deployment", "ingest-live")["spec"]["template"]["spec"]["containers"][0]
    build_parser().parse_args(live["command"][1:])

    hpa = manifest("HorizontalPodAutoscaler", "ingest-sidecar")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "ingest-sidecar")
    assert "replicas" not in manifest("Deployment", "ingest-sidecar")["spec"], "the HPA owns it"
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    sidecar = manifest("Deployment", "ingest-sidecar")["spec"]["template"]["spec"]["containers"][0]
    assert "cpu" in sidecar["resources"]["requests"], "CPU utilisation needs a CPU request"


def _proxy_sh(**env: str):
    """docker/infra/proxy.sh up to its refusals (which come before it writes anything)."""
    import subprocess

    base = {
        "PATH": "/usr/bin:/bin",
        "OPERATOR_USER": "operator",
        "OPERATOR_PASSWORD": "Q3mnv8Tr0ngEnough55",
        "PROXY_SECRET": "Zt7bq2Lm9Xw4Kp8Rs3Vd",
        "UPSTREAM": "webserver-operator:3000",
        "VIEWER_UPSTREAM": "webserver:3000",
    }
    return subprocess.run(
        ["bash", str(ROOT / "docker" / "infra" / "proxy.sh")],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.skipif(Path("/etc/ingest-tls").exists(), reason="a certificate folder is present")
def test_the_proxy_refuses_placeholders_weak_secrets_and_clear_text_beyond_loopback():
    done = _proxy_sh(OPERATOR_PASSWORD="change-me-operator")
    assert done.returncode == 1 and "placeholder" in done.stderr
    done = _proxy_sh(PROXY_SECRET="short")
    assert done.returncode == 1 and "at least 16 characters" in done.stderr
    done = _proxy_sh(PUBLISH_BINDS="127.0.0.1 0.0.0.0")
    assert done.returncode == 1
    assert "published on 0.0.0.0 without TLS" in done.stderr
