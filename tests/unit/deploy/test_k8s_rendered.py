"""Every kustomization as `kubectl kustomize` renders it: schema-valid, hardened, budgeted, autoscaled, fenced."""

import functools
import importlib
import json
import math
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
from deploytools import (
    BASE,
    CRD_KINDS,
    INFRA,
    INFRA_NAMESPACE,
    OVERLAYS,
    ROOT,
    SERVICES,
    Doc,
    Pod,
    all_containers,
    applied_kustomizations,
    by_name,
    container_ports,
    egress_to_ip_allowed,
    flow_allowed,
    ingress_routes,
    kustomizations,
    matches,
    name_of,
    of_kind,
    pod_labels,
    pod_spec,
    render,
    route,
    service_of,
    workloads,
)
from kubernetes_validate.utils import all_versions

from poi_registry.settings import RegistrySettings
from poi_shared import contracts
from poi_shared.auth import TokenVerifier, issue_token
from poi_shared.settings import AuthSettings

# The oldest minor release we deploy to, and the newest kubernetes-validate knows.
K8S_VERSIONS = ("1.32.0", "1.37.0")
APP_DIRS = [BASE, *sorted(p for p in OVERLAYS.iterdir() if p.is_dir())]
HPA_SYNC_S = 15  # the HorizontalPodAutoscaler's default sync period
# /v1 routes only the cluster calls (e.g. Kannel's callbacks to notify), which the Ingress must not publish.
# Kannel's callbacks to notify: inside the cluster only (Kannel's pod calls notify's Service).
INTERNAL_PATHS: set[str] = {"/v1/sms/inbound", "/v1/sms/dlr"}
TRIGGER_KEYS = {
    "prometheus": {"serverAddress", "query", "threshold"},
    "cpu": {"value"},
    "nats-jetstream": {"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold"},
}


def hardening_problems(workload: Doc) -> list[str]:
    """Every rule for a pod, as a list of what breaks it (empty when none does)."""
    name = f"{workload['kind']}/{workload['metadata']['name']}"
    spec = pod_spec(workload)
    problems = []
    if spec.get("automountServiceAccountToken") is not False:
        problems.append(f"{name}: automountServiceAccountToken must be false")
    pod_security = spec.get("securityContext", {})
    if pod_security.get("runAsNonRoot") is not True or pod_security.get("seccompProfile", {}).get("type") != (
        "RuntimeDefault"
    ):
        problems.append(f"{name}: pod securityContext must set runAsNonRoot and seccompProfile RuntimeDefault")
    for container in all_containers(workload):
        where = f"{name}/{container['name']}"
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            if set(resources.get(bound, {})) < {"cpu", "memory"}:
                problems.append(f"{where}: resources.{bound} needs cpu and memory")
        if container.get("imagePullPolicy") not in {"Always", "IfNotPresent"}:
            problems.append(f"{where}: imagePullPolicy must be set to Always or IfNotPresent")
        security = container.get("securityContext", {})
        wanted = {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False}
        for key, value in wanted.items():
            if security.get(key) != value:
                problems.append(f"{where}: securityContext.{key} must be {value!r}, is {security.get(key)!r}")
        if not isinstance(security.get("runAsUser"), int) or security["runAsUser"] < 10000:
            problems.append(f"{where}: securityContext.runAsUser must be a numeric uid of 10000 or more")
        if security.get("capabilities", {}).get("drop") != ["ALL"] or security.get("capabilities", {}).get("add"):
            problems.append(f"{where}: securityContext.capabilities must drop ALL and add nothing")
        if security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: securityContext.seccompProfile.type must be RuntimeDefault")
        if security.get("privileged"):
            problems.append(f"{where}: privileged")
    for container in spec["containers"]:
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in container:
                problems.append(f"{name}/{container['name']}: no {probe}")
    return problems


def scaled_objects_by_target(docs: list[Doc]) -> dict[str, Doc]:
    result: dict[str, Doc] = {}
    for so in of_kind(docs, "ScaledObject"):
        target = so["spec"]["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment"
        assert target["name"] not in result, f"two ScaledObjects scale {target['name']}"
        result[target["name"]] = so
    return result


def durable_consumers() -> dict[str, dict[str, contracts.StreamSpec]]:
    """Each service's durable consumers in the code (events.<STREAM>_CONSUMER or <STREAM>_<PURPOSE>_CONSUMER, e.g.
    STATUS_WEBHOOKS_CONSUMER), with the stream each reads."""
    consumers: dict[str, dict[str, contracts.StreamSpec]] = {}
    for svc in SERVICES:
        try:
            events = importlib.import_module(f"poi_{svc}.events")
        except ModuleNotFoundError:
            continue
        for attr, value in vars(events).items():
            if attr.endswith("_CONSUMER") and isinstance(value, str):
                words = attr.removesuffix("_CONSUMER").split("_")
                prefixes = ("_".join(words[:n]) for n in range(len(words), 0, -1))
                stream = next(
                    (s for p in prefixes if isinstance(s := getattr(contracts, p, None), contracts.StreamSpec)), None
                )
                assert stream is not None, (
                    f"poi_{svc}.events.{attr}: name it <STREAM>_CONSUMER or <STREAM>_<PURPOSE>_CONSUMER"
                )
                consumers.setdefault(svc, {})[value] = stream
    return consumers


def event_namespace(docs: list[Doc]) -> str:
    return by_name(docs, "ConfigMap")["poi-service-env"]["data"]["NAMESPACE"]


def scale_up_seconds(behavior: Doc, start: int, end: int) -> int:
    """Seconds of HorizontalPodAutoscaler decisions from start to end replicas when demand exceeds end at once."""
    policies = behavior["scaleUp"]["policies"]
    assert behavior["scaleUp"].get("stabilizationWindowSeconds", 0) == 0
    assert behavior["scaleUp"].get("selectPolicy", "Max") == "Max"
    assert all(p["periodSeconds"] <= HPA_SYNC_S for p in policies), "one decision per sync, each bounded per period"
    replicas, elapsed = start, 0
    while replicas < end:
        allowed = [
            math.ceil(replicas * (1 + p["value"] / 100)) if p["type"] == "Percent" else replicas + p["value"]
            for p in policies
        ]
        replicas, elapsed = min(end, max(allowed)), elapsed + HPA_SYNC_S
    return elapsed


def env_of(container: Doc, docs: list[Doc], secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """The environment a container starts with, ConfigMaps and the given secret values resolved."""
    config_maps = {cm["metadata"]["name"]: cm.get("data", {}) for cm in of_kind(docs, "ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        for key, value in config_maps[source["configMapRef"]["name"]].items():
            env[source.get("prefix", "") + key] = value
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[(ref["name"], ref["key"])]
    return env


@functools.cache
def validate(doc_json: str, version: str) -> None:
    """kubernetes-validate --strict of one object; the same object in several renders is validated once."""
    kubernetes_validate.validate(json.loads(doc_json), version, strict=True)


def test_the_kubernetes_versions_have_schemas() -> None:
    assert set(K8S_VERSIONS) <= set(all_versions())


@pytest.mark.parametrize("directory", kustomizations(), ids=name_of)
def test_every_object_is_valid_and_namespaced(directory: Path) -> None:
    docs = render(directory)
    assert docs
    namespaces = {d["metadata"]["name"] for d in of_kind(docs, "Namespace")}
    assert len(namespaces) == 1, "each kustomization owns exactly one namespace"
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue  # no schema offline; checked by the tests of each operator's kind below
        for version in K8S_VERSIONS:
            validate(json.dumps(doc, sort_keys=True), version)
        assert doc["kind"] != "Secret", "secret values are never committed"
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") in namespaces, f"{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("directory", kustomizations(), ids=name_of)
def test_namespaces_enforce_the_restricted_pod_security_standard(directory: Path) -> None:
    for namespace in of_kind(render(directory), "Namespace"):
        labels = namespace["metadata"]["labels"]
        for mode in ("enforce", "audit", "warn"):
            assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


@pytest.mark.parametrize("directory", kustomizations(), ids=name_of)
def test_workloads_are_hardened(directory: Path) -> None:
    docs = render(directory)
    assert workloads(docs)
    problems = [p for w in workloads(docs) for p in hardening_problems(w)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("directory", APP_DIRS, ids=name_of)
def test_the_services_probe_liveness_and_readiness_apart(directory: Path) -> None:
    deployments = of_kind(render(directory), "Deployment")
    assert {service_of(d) for d in deployments} == set(SERVICES)
    for deployment in deployments:
        (server,) = pod_spec(deployment)["containers"]
        gets = {p: server[p]["httpGet"] for p in ("startupProbe", "readinessProbe", "livenessProbe")}
        assert gets["readinessProbe"]["path"] == "/readyz"
        assert gets["livenessProbe"]["path"] == "/livez"
        assert gets["startupProbe"]["path"] == "/livez", "started means the lifespan is done and the server listens"
        assert all(g["port"] in container_ports(deployment) for g in gets.values())
        # /readyz answers within 1 s by design; the probe waits longer than that, never less.
        assert server["readinessProbe"]["timeoutSeconds"] >= 2
        startup = server["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "dependencies get 60 s each at start"


@pytest.mark.parametrize("directory", kustomizations(), ids=name_of)
def test_every_workload_has_one_disruption_budget_that_allows_a_drain(directory: Path) -> None:
    docs = render(directory)
    budgets = of_kind(docs, "PodDisruptionBudget")
    for workload in workloads(docs):
        selecting = [
            b
            for b in budgets
            if b["metadata"]["namespace"] == workload["metadata"]["namespace"]
            and matches(b["spec"]["selector"], pod_labels(workload))
        ]
        assert len(selecting) == 1, f"{workload['metadata']['name']}: {len(selecting)} budgets"
        # maxUnavailable, never minAvailable: a budget of one replica with minAvailable 1 blocks every node drain.
        assert "maxUnavailable" in selecting[0]["spec"] and "minAvailable" not in selecting[0]["spec"]


@pytest.mark.parametrize("directory", kustomizations(), ids=name_of)
def test_no_deployment_has_two_autoscalers(directory: Path) -> None:
    docs = render(directory)
    hpa_targets = [h["spec"]["scaleTargetRef"]["name"] for h in of_kind(docs, "HorizontalPodAutoscaler")]
    scaled = scaled_objects_by_target(docs)
    assert not set(hpa_targets) & set(scaled), "a ScaledObject already runs a HorizontalPodAutoscaler"
    assert len(hpa_targets) == len(set(hpa_targets))
    for deployment in of_kind(docs, "Deployment"):
        name = deployment["metadata"]["name"]
        if name in scaled or name in hpa_targets:
            # The autoscaler owns the count; a replicas field would reset it on every apply.
            assert "replicas" not in deployment["spec"], name
        else:
            assert deployment["spec"].get("replicas", 0) >= 1, name


@pytest.mark.parametrize("directory", [BASE, OVERLAYS / "prod"], ids=name_of)
def test_every_service_scales_on_requests_and_cpu_and_consumers_on_lag(directory: Path) -> None:
    docs = render(directory)
    scaled = scaled_objects_by_target(docs)
    deployments = by_name(docs, "Deployment")
    assert set(scaled) == set(deployments)
    consumers = durable_consumers()
    assert consumers, "no durable consumer found in the services' events modules"
    for name, so in scaled.items():
        svc, spec = service_of(deployments[name]), so["spec"]
        namespace = so["metadata"]["namespace"]
        assert 2 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        triggers = spec["triggers"]
        for trigger in triggers:
            assert TRIGGER_KEYS[trigger["type"]] <= set(trigger["metadata"]), trigger
        by_type: dict[str, list[Doc]] = {}
        for trigger in triggers:
            by_type.setdefault(trigger["type"], []).append(trigger)
        (requests,) = by_type["prometheus"]
        query = requests["metadata"]["query"]
        assert "poi_http_requests_total" in query
        assert f'namespace="{namespace}"' in query and f'app="{name}"' in query
        assert float(requests["metadata"]["threshold"]) > 0
        (cpu,) = by_type["cpu"]
        assert cpu["metricType"] == "Utilization"
        assert cpu["metadata"]["containerName"] in {c["name"] for c in pod_spec(deployments[name])["containers"]}
        lag = {(t["metadata"]["stream"], t["metadata"]["consumer"]) for t in by_type.get("nats-jetstream", [])}
        wanted = {(s.stream_name(event_namespace(docs)), d) for d, s in consumers.get(svc, {}).items()}
        assert lag == wanted, f"{svc}: lag triggers {lag}, durable consumers {wanted}"
        for trigger in by_type.get("nats-jetstream", []):
            assert trigger["metadata"]["natsServerMonitoringEndpoint"].startswith(f"nats-headless.{INFRA_NAMESPACE}.")


@pytest.mark.parametrize("directory", [BASE, OVERLAYS / "prod"], ids=name_of)
def test_search_goes_from_its_minimum_to_its_maximum_within_a_minute_of_decisions(directory: Path) -> None:
    """With Prometheus' 10 s scrape, a 30 s rate window and ~10 s for a replica to be ready, that is ~2 minutes."""
    (so,) = [s for s in of_kind(render(directory), "ScaledObject") if s["metadata"]["name"] == "poi-search"]
    spec = so["spec"]
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert scale_up_seconds(behavior, spec["minReplicaCount"], spec["maxReplicaCount"]) <= 60
    assert scale_up_seconds(behavior, 2, 20) <= 60
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300, "traffic comes back in waves"


@pytest.mark.parametrize("directory", [BASE, OVERLAYS / "prod"], ids=name_of)
def test_pod_monitors_scrape_what_the_autoscalers_query(directory: Path) -> None:
    docs = render(directory)
    deployments = of_kind(docs, "Deployment")
    monitors = of_kind(docs, "PodMonitor")
    assert len(monitors) == len(deployments)
    for monitor in monitors:
        (target,) = [d for d in deployments if matches(monitor["spec"]["selector"], pod_labels(d))]
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        assert endpoint["path"] == "/metrics" and endpoint["port"] in container_ports(target)
        assert "app" in monitor["spec"]["podTargetLabels"] and "app" in pod_labels(target)


@pytest.mark.parametrize("directory", kustomizations(), ids=name_of)
def test_every_namespace_denies_by_default_and_every_service_is_let_in(directory: Path) -> None:
    docs = render(directory)
    policies = of_kind(docs, "NetworkPolicy")
    for namespace in of_kind(docs, "Namespace"):
        ns = namespace["metadata"]["name"]
        deny = [
            p
            for p in policies
            if p["metadata"]["namespace"] == ns and p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")
        ]
        assert any("Ingress" in p["spec"]["policyTypes"] for p in deny), f"{ns}: no default-deny ingress"
    for service in of_kind(docs, "Service"):
        ns = service["metadata"]["namespace"]
        pods = [w for w in workloads(docs) if w["metadata"]["namespace"] == ns]
        (target,) = [w for w in pods if matches({"matchLabels": service["spec"]["selector"]}, pod_labels(w))]
        ports = container_ports(target)
        for port in service["spec"]["ports"]:
            number = ports[port.get("targetPort", port["port"])]
            letting_in = [
                p
                for p in policies
                if p["metadata"]["namespace"] == ns
                and matches(p["spec"]["podSelector"], pod_labels(target))
                and any(
                    any(e.get("port") in (number, *[k for k, v in ports.items() if v == number]) for e in r["ports"])
                    for r in p["spec"].get("ingress", [])
                )
            ]
            assert letting_in, f"no NetworkPolicy lets anything reach {ns}/{service['metadata']['name']}:{number}"


def test_ingress_routes_every_public_path_to_the_service_that_serves_it() -> None:
    docs = render(BASE)
    services = by_name(docs, "Service")
    for _, backend, port in ingress_routes(docs):
        assert port in {p["name"] for p in services[backend]["spec"]["ports"]}
    for svc in SERVICES:
        app = importlib.import_module(f"poi_{svc}.app").create_app()
        paths = [p for p in app.openapi()["paths"] if p.startswith("/v1/")]
        assert paths, svc
        for path in paths:
            concrete = re.sub(r"\{[^}]+\}", "0f8a3c2e-5b1d-4e7a-9c6f-2d4b8e1a7c35", path)
            wanted = None if path in INTERNAL_PATHS else f"poi-{svc}"
            assert route(docs, concrete) == wanted, f"{path} should reach {wanted or 'nobody from outside'}"
    for private in ("/livez", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert route(docs, private) is None, f"{private} is not public"
    public = {i["metadata"]["name"]: i for i in of_kind(docs, "Ingress")}["poi-public"]
    annotations = public["metadata"].get("annotations", {})
    assert not any("affinity" in k or "cookie" in k for k in annotations), "cookies make public reads uncacheable"


def test_dev_runs_one_small_pod_each_and_authenticates_with_the_dev_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    base = by_name(render(BASE), "Deployment")
    docs = render(OVERLAYS / "dev")
    assert of_kind(docs, "ScaledObject") == [] and of_kind(docs, "PodMonitor") == []
    secret = "dev-secret-from-kubectl-create-secret"
    secrets = {
        ("poi-dev-auth", "secret"): secret,
        **{("poi-secrets", f"{svc}-database-url"): "postgresql://db" for svc in SERVICES},
        ("poi-secrets", "status-redis-url"): "redis://redis",
        ("poi-secrets", "notify-phone-key"): "a-phone-hash-key",
        ("poi-secrets", "kannel-username"): "notify",
        ("poi-secrets", "kannel-password"): "a-sendsms-password",
        ("poi-secrets", "notify-gateway-token"): "a-gateway-token",
    }
    for name, deployment in by_name(docs, "Deployment").items():
        assert deployment["spec"]["replicas"] == 1
        for old, new in zip(all_containers(base[name]), all_containers(deployment), strict=True):
            assert new["resources"]["requests"]["cpu"] != old["resources"]["requests"]["cpu"], name
            env = env_of(new, docs, secrets)
            for key in list(env):
                monkeypatch.delenv(key, raising=False)
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            settings = AuthSettings()
            assert settings.jwks_url is None and settings.public_key is None
            # What `poi token` signs, given the secret (README: POI_AUTH_SECRET=... poi token --role admin).
            token = issue_token(secret, subject="dev", roles=["admin"])
            assert TokenVerifier(settings).verify(token).subject == "dev"


def test_prod_pins_images_spreads_zones_and_verifies_the_identity_providers_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = render(OVERLAYS / "prod")
    versions = {svc: _project_version(Path("services") / svc) for svc in SERVICES}
    for deployment in of_kind(docs, "Deployment"):
        svc = service_of(deployment)
        for container in all_containers(deployment):
            image = container["image"]
            assert not image.endswith(":latest") and (":" in image or "@sha256:" in image), image
            assert image.endswith(f":{versions[svc]}") or "@sha256:" in image, f"{image}: not the release's version"
        keys = {c["topologyKey"] for c in pod_spec(deployment)["topologySpreadConstraints"]}
        assert {"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= keys
    for so in of_kind(docs, "ScaledObject"):
        assert so["spec"]["minReplicaCount"] >= 3, "at least one replica per zone"
    (server,) = pod_spec(by_name(docs, "Deployment")["poi-registry"])["containers"]
    env = env_of(server, docs, {("poi-secrets", "registry-database-url"): "postgresql://db"})
    monkeypatch.delenv("POI_AUTH_SECRET", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = AuthSettings()
    assert settings.jwks_url and settings.secret is None, "production verifies the identity provider's keys only"
    assert RegistrySettings().stream_replicas == 3, "every stream on the three NATS servers"


def _project_version(package: Path) -> str:
    return tomllib.loads((ROOT / package / "pyproject.toml").read_text())["project"]["version"]


@pytest.mark.parametrize("directory", applied_kustomizations(), ids=name_of)
def test_applied_kustomizations_name_real_images(directory: Path) -> None:
    for workload in workloads(render(directory)):
        for container in all_containers(workload):
            image = container["image"]
            assert "/" in image or image.count(":") == 1, f"{image}: a placeholder the overlay did not map"
            assert not image.endswith(":latest") and ":" in image, image


def test_database_connections_fit_each_cluster() -> None:
    """Each replica's pool times the most replicas, plus migrations and the operator's, within max_connections."""
    app = render(OVERLAYS / "prod")
    clusters = by_name(render(INFRA / "prod"), "Cluster")
    scaled = scaled_objects_by_target(app)
    for deployment in of_kind(app, "Deployment"):
        svc = service_of(deployment)
        (server,) = pod_spec(deployment)["containers"]
        pool = {e["name"]: e.get("value") for e in server.get("env", [])}.get(f"POI_{svc.upper()}_DB_POOL_MAX")
        if pool is None:
            assert f"poi-{svc}-db" not in clusters
            continue
        cluster = clusters[f"poi-{svc}-db"]["spec"]
        most = scaled[deployment["metadata"]["name"]]["spec"]["maxReplicaCount"]
        reserve = 20  # migrations, CloudNativePG's own connections, an operator's psql
        assert most * int(pool) + reserve <= int(cluster["postgresql"]["parameters"]["max_connections"]), svc


def test_each_database_service_has_its_own_cluster_that_survives_a_zone() -> None:
    wanted = {f"poi-{svc}-db" for svc in ("registry", "status", "notify")}
    prod = by_name(render(INFRA / "prod"), "Cluster")
    assert set(prod) == wanted
    for name, cluster in prod.items():
        spec = cluster["spec"]
        assert spec["bootstrap"]["initdb"]["database"] == name.removesuffix("-db").replace("-", "_")
        assert spec["instances"] == 3
        assert spec["postgresql"]["synchronous"]["number"] >= 1
        assert spec["postgresql"]["synchronous"]["dataDurability"] == "required"
        assert spec["affinity"]["topologyKey"] == "topology.kubernetes.io/zone"
        assert spec["affinity"]["podAntiAffinityType"] == "required"
        assert ":latest" not in spec["imageName"] and ":" in spec["imageName"]
    for name, cluster in by_name(render(INFRA / "dev"), "Cluster").items():
        # One instance cannot wait for a synchronous standby.
        assert cluster["spec"]["instances"] == 1 and "synchronous" not in cluster["spec"]["postgresql"], name


@pytest.mark.parametrize("directory", [INFRA / "dev", INFRA / "prod"], ids=name_of)
def test_redis_refuses_writes_before_its_container_runs_out_of_memory(directory: Path) -> None:
    (redis,) = [s for s in of_kind(render(directory), "StatefulSet") if s["metadata"]["name"] == "redis"]
    (container,) = pod_spec(redis)["containers"]
    args = container["args"]
    maxmemory = _bytes(args[args.index("--maxmemory") + 1])
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert maxmemory <= 0.8 * _bytes(container["resources"]["limits"]["memory"])


def _bytes(quantity: str) -> float:
    units = {"mb": 1e6, "gb": 1e9, "Mi": 2**20, "Gi": 2**30}
    number, unit = re.fullmatch(r"(\d+)([A-Za-z]+)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * units[unit]


def test_the_services_find_the_data_tier_where_infra_puts_it() -> None:
    app, infra = render(OVERLAYS / "prod"), render(INFRA / "prod")
    infra_services = by_name(infra, "Service")
    shared = by_name(app, "ConfigMap")["poi-shared-env"]["data"]
    service_env = by_name(app, "ConfigMap")["poi-service-env"]["data"]
    host, port = _host_port(shared["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert host == f"otel-collector.{INFRA_NAMESPACE}.svc.cluster.local"
    assert port in {p["port"] for p in infra_services["otel-collector"]["spec"]["ports"]}
    # NATS is the Helm release `nats` in the infra namespace (its client Service is named after the release).
    assert _host_port(service_env["NATS_URL"]) == (f"nats.{INFRA_NAMESPACE}.svc.cluster.local", 4222)
    assert {"redis", "kannel", "otel-collector"} <= set(infra_services)


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


NATS = {"app.kubernetes.io/name": "nats", "app.kubernetes.io/instance": "nats", "app.kubernetes.io/component": "nats"}


def test_network_policies_allow_the_architectures_flows_and_nothing_else() -> None:
    app, infra = render(OVERLAYS / "prod"), render(INFRA / "prod")
    policies = of_kind([*app, *infra], "NetworkPolicy")
    pods = {w["metadata"]["name"]: Pod.of(w) for w in workloads([*app, *infra])}
    nats = Pod(INFRA_NAMESPACE, NATS, {4222: 4222, 6222: 6222, 8222: 8222})
    db = {svc: Pod(INFRA_NAMESPACE, {"cnpg.io/cluster": f"poi-{svc}-db"}, {5432: 5432}) for svc in SERVICES}
    ingress_controller = Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
    prometheus = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
    keda = Pod("keda", {"app": "keda-operator"})
    stranger = Pod("default", {"app": "anything"})
    apps = {svc: pods[f"poi-{svc}"] for svc in SERVICES}

    allowed: list[tuple[Pod, Pod, int]] = [(keda, nats, 8222)]
    denied: list[tuple[Pod, Pod, int]] = [(stranger, nats, 4222), (stranger, pods["redis"], 6379)]
    for svc, pod in apps.items():
        allowed += [(pod, nats, 4222), (ingress_controller, pod, 8080), (prometheus, pod, 8080)]
        allowed.append((pod, pods["otel-collector"], 4318))
        denied += [(stranger, pod, 8080), (pod, nats, 6222)]
        for other in SERVICES:
            if other in ("registry", "status", "notify"):
                (allowed if other == svc else denied).append((pod, db[other], 5432))
        assert egress_to_ip_allowed(policies, pod, "198.51.100.7", 443), f"{svc}: the identity provider's JWKS"
        assert not egress_to_ip_allowed(policies, pod, "10.1.2.3", 443), f"{svc}: the cluster's private ranges"
        assert not egress_to_ip_allowed(policies, pod, "198.51.100.7", 80), f"{svc}: only HTTPS leaves"
    for svc in ("status", "search", "notify"):
        allowed.append((apps[svc], pods["redis"], 6379))
    denied.append((apps["registry"], pods["redis"], 6379))
    allowed += [(apps["notify"], apps["search"], 8080), (apps["notify"], pods["kannel"], 13013)]
    allowed.append((pods["kannel"], apps["notify"], 8080))
    denied += [(apps["registry"], apps["search"], 8080), (apps["search"], pods["kannel"], 13013)]
    denied += [(apps["search"], apps["registry"], 8080), (apps["status"], apps["notify"], 8080)]
    for source, destination, port in allowed:
        assert flow_allowed(policies, source, destination, port), f"{source} -> {destination}:{port} is blocked"
    for source, destination, port in denied:
        assert not flow_allowed(policies, source, destination, port), f"{source} -> {destination}:{port} is open"
