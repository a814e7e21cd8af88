"""The manifests under deploy/k8s: schema-valid, hardened, consistent with their kustomizations and the code."""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from poi_notify.settings import NotifySettings
from poi_registry.settings import RegistrySettings
from poi_search.settings import SearchSettings
from poi_shared.settings import AuthSettings
from poi_status.settings import StatusSettings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = K8S / "overlays"
# The oldest minor release we deploy to; kubernetes-validate ships a schema set per minor release.
K8S_VERSION = "1.32.0"
KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"
SECRET_NAME = "poi-secrets"
UID = 10001

SETTINGS = {"registry": RegistrySettings, "status": StatusSettings, "search": SearchSettings, "notify": NotifySettings}
SECRET_ENV = {
    "registry": {"POI_REGISTRY_DATABASE_URL"},
    "status": {"POI_STATUS_DATABASE_URL", "POI_STATUS_REDIS_URL"},
    "search": set(),
    "notify": {"POI_NOTIFY_DATABASE_URL"},
}
MIGRATING = {"registry", "status", "notify"}
AUTOSCALED = {"registry": 2, "status": 2, "search": 2}

Doc = dict[str, Any]


def load(path: Path) -> list[Doc]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def yaml_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*") if p.suffix in {".yaml", ".yml"})


def is_kustomization(doc: Doc) -> bool:
    return doc.get("apiVersion") == KUSTOMIZE_API and doc.get("kind") in {"Kustomization", "Component"}


def base_docs() -> list[Doc]:
    return [doc for path in sorted(BASE.glob("*.yaml")) for doc in load(path) if not is_kustomization(doc)]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def service_of(deployment: Doc) -> str:
    name = deployment["metadata"]["name"]
    assert name.startswith("poi-"), name
    return name.removeprefix("poi-")


def pod_spec(deployment: Doc) -> Doc:
    return deployment["spec"]["template"]["spec"]


def all_containers(deployment: Doc) -> list[Doc]:
    spec = pod_spec(deployment)
    return [*spec.get("initContainers", []), *spec["containers"]]


def hardening_problems(deployment: Doc) -> list[str]:
    """Every rule the brief sets for a Deployment, as a list of what breaks it (empty when none does)."""
    name = deployment["metadata"]["name"]
    spec = pod_spec(deployment)
    problems = []
    if spec.get("automountServiceAccountToken") is not False:
        problems.append(f"{name}: automountServiceAccountToken must be false")
    pod_security = spec.get("securityContext", {})
    if pod_security.get("runAsNonRoot") is not True or pod_security.get("seccompProfile", {}).get("type") != (
        "RuntimeDefault"
    ):
        problems.append(f"{name}: pod securityContext must set runAsNonRoot and seccompProfile RuntimeDefault")
    for container in all_containers(deployment):
        where = f"{name}/{container['name']}"
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            if set(resources.get(bound, {})) < {"cpu", "memory"}:
                problems.append(f"{where}: resources.{bound} needs cpu and memory")
        if not container.get("image"):
            problems.append(f"{where}: no image")
        if container.get("imagePullPolicy") not in {"Always", "IfNotPresent"}:
            problems.append(f"{where}: imagePullPolicy must be set to Always or IfNotPresent")
        security = container.get("securityContext", {})
        wanted = {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
        }
        for key, value in wanted.items():
            if security.get(key) != value:
                problems.append(f"{where}: securityContext.{key} must be {value!r}, is {security.get(key)!r}")
        if security.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{where}: securityContext.capabilities.drop must be [ALL]")
        if security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: securityContext.seccompProfile.type must be RuntimeDefault")
        if "privileged" in security and security["privileged"] is not False:
            problems.append(f"{where}: privileged")
    for container in spec["containers"]:
        where = f"{name}/{container['name']}"
        port_refs = {p["containerPort"] for p in container.get("ports", [])} | {
            p["name"] for p in container.get("ports", []) if "name" in p
        }
        paths = {}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            get = container.get(probe, {}).get("httpGet")
            if get is None:
                problems.append(f"{where}: {probe} must be an httpGet probe")
                continue
            paths[probe] = get.get("path")
            if get.get("port") not in port_refs:
                problems.append(f"{where}: {probe} port {get.get('port')!r} is none of the container's ports")
        if paths.get("readinessProbe") != "/readyz":
            problems.append(f"{where}: readinessProbe must GET /readyz")
        if paths.get("livenessProbe") != "/livez":
            problems.append(f"{where}: livenessProbe must GET /livez")
        if paths.get("readinessProbe") == paths.get("livenessProbe"):
            problems.append(f"{where}: liveness and readiness must not share a path")
    return problems


def env_sources(container: Doc) -> tuple[list[Doc], list[Doc]]:
    return container.get("envFrom", []), container.get("env", [])


def test_the_chosen_kubernetes_version_has_schemas() -> None:
    assert K8S_VERSION in all_versions()


def test_there_are_manifests() -> None:
    names = {p.relative_to(K8S).as_posix() for p in yaml_files()}
    wanted = {f"base/{svc}.yaml" for svc in SETTINGS} | {
        "base/config.yaml",
        "base/kustomization.yaml",
        "overlays/dev/kustomization.yaml",
    }
    assert wanted <= names


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: p.relative_to(K8S).as_posix())
def test_every_document_is_valid(path: Path) -> None:
    docs = load(path)
    assert docs, f"{path} holds no document"
    for doc in docs:
        if is_kustomization(doc):
            # No JSON schema for kustomize's own kind; kubectl kustomize checks it in test_kustomize_builds.
            assert path.name == "kustomization.yaml"
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["kind"] != "Secret", "secret values are never committed"


@pytest.mark.parametrize(
    "directory", sorted(p.parent for p in K8S.rglob("kustomization.yaml")), ids=lambda p: p.relative_to(K8S).as_posix()
)
def test_every_kustomization_lists_files_that_exist(directory: Path) -> None:
    (kustomization,) = load(directory / "kustomization.yaml")
    assert kustomization["apiVersion"] == KUSTOMIZE_API
    assert kustomization["kind"] == "Kustomization"
    for resource in kustomization.get("resources", []):
        assert (directory / resource).exists(), f"{directory.name}: {resource} does not exist"


def test_every_base_file_is_listed_in_the_kustomization() -> None:
    (kustomization,) = load(BASE / "kustomization.yaml")
    files = {p.name for p in BASE.iterdir() if p.suffix in {".yaml", ".yml"} and p.name != "kustomization.yaml"}
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    assert set(resources) == files


def test_kustomize_images_are_the_images_the_containers_use() -> None:
    (kustomization,) = load(BASE / "kustomization.yaml")
    images = {entry["name"]: entry for entry in kustomization["images"]}
    used = {c["image"] for d in of_kind(base_docs(), "Deployment") for c in all_containers(d)}
    assert set(images) == used
    for name, entry in images.items():
        svc = name.removeprefix("poi-")
        assert entry.get("newName") == f"poi/{svc}"
        assert entry.get("newTag") or entry.get("digest")


def test_each_service_file_holds_its_service_account_deployment_and_service() -> None:
    for svc in SETTINGS:
        docs = load(BASE / f"{svc}.yaml")
        for kind in ("ServiceAccount", "Deployment", "Service"):
            found = [d["metadata"]["name"] for d in of_kind(docs, kind)]
            assert found == [f"poi-{svc}"], f"{svc}.yaml: {kind} {found}"


def test_deployments_are_hardened() -> None:
    deployments = of_kind(base_docs(), "Deployment")
    assert {service_of(d) for d in deployments} == set(SETTINGS)
    problems = [p for d in deployments for p in hardening_problems(d)]
    assert not problems, "\n".join(problems)


def test_service_accounts_mount_no_token() -> None:
    docs = base_docs()
    accounts = {sa["metadata"]["name"]: sa for sa in of_kind(docs, "ServiceAccount")}
    for deployment in of_kind(docs, "Deployment"):
        account = accounts[pod_spec(deployment)["serviceAccountName"]]
        assert account.get("automountServiceAccountToken") is False


def test_containers_run_the_service_and_its_migrations() -> None:
    for deployment in of_kind(base_docs(), "Deployment"):
        svc = service_of(deployment)
        spec = pod_spec(deployment)
        (server,) = spec["containers"]
        assert server["command"] == [
            "uvicorn",
            f"poi_{svc}.app:create_app",
            "--factory",
            "--host",
            "0.0.0.0",  # noqa: S104 - a pod must listen on its own IP, not loopback
            "--port",
            "8080",
        ]
        assert [p["containerPort"] for p in server["ports"]] == [8080]
        inits = spec.get("initContainers", [])
        if svc not in MIGRATING:
            assert inits == [], f"{svc} has no database to migrate"
            continue
        (migrate,) = inits
        assert migrate["command"] == ["python", "-m", f"poi_{svc}", "migrate"]
        for key in ("image", "imagePullPolicy", "env", "envFrom", "securityContext", "volumeMounts"):
            assert migrate.get(key) == server.get(key), f"{svc}: migrate and server differ in {key}"


def test_env_matches_the_settings_and_secrets_come_from_the_secret() -> None:
    docs = base_docs()
    config_maps = {cm["metadata"]["name"]: cm.get("data", {}) for cm in of_kind(docs, "ConfigMap")}
    auth_fields = {f"POI_AUTH_{field.upper()}" for field in AuthSettings.model_fields}
    for deployment in of_kind(docs, "Deployment"):
        svc = service_of(deployment)
        prefix = f"POI_{svc.upper()}_"
        fields = {prefix + field.upper() for field in SETTINGS[svc].model_fields}
        for container in all_containers(deployment):
            env_from, env = env_sources(container)
            names: set[str] = set()
            for source in env_from:
                assert "secretRef" not in source, "each pod gets only its own secrets, one key at a time"
                data = config_maps[source["configMapRef"]["name"]]
                names |= {source.get("prefix", "") + key for key in data}
            for var in env:
                names.add(var["name"])
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    assert ref["name"] == SECRET_NAME
                    assert ref.get("optional") is False
            secret_vars = {v["name"] for v in env if "secretKeyRef" in v.get("valueFrom", {})}
            assert secret_vars == SECRET_ENV[svc], svc
            assert {prefix + "NATS_URL", prefix + "NAMESPACE"} <= names, svc
            unknown = {n for n in names if n.startswith("POI_") and n not in fields | auth_fields}
            assert not unknown, f"{svc}: no setting reads {sorted(unknown)}"


def test_no_secret_value_is_in_a_config_map() -> None:
    for config_map in of_kind(base_docs(), "ConfigMap"):
        for key in config_map.get("data", {}):
            assert not any(word in key for word in ("DATABASE_URL", "REDIS_URL", "SECRET", "PASSWORD", "TOKEN")), key


def test_each_service_targets_a_port_of_the_pods_it_selects() -> None:
    docs = base_docs()
    deployments = of_kind(docs, "Deployment")
    for service in of_kind(docs, "Service"):
        selector = service["spec"]["selector"]
        (target,) = [d for d in deployments if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        ports = [p for c in pod_spec(target)["containers"] for p in c.get("ports", [])]
        refs = {p["containerPort"] for p in ports} | {p["name"] for p in ports if "name" in p}
        for port in service["spec"]["ports"]:
            assert port.get("targetPort", port["port"]) in refs, f"{service['metadata']['name']}: {port}"


def test_autoscalers_and_disruption_budget() -> None:
    docs = base_docs()
    deployments = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(docs, "HorizontalPodAutoscaler")}
    assert set(hpas) == {f"poi-{svc}" for svc in AUTOSCALED}
    for svc, minimum in AUTOSCALED.items():
        hpa = hpas[f"poi-{svc}"]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert hpa["spec"]["minReplicas"] == minimum
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 60}
        # The autoscaler owns the count; a replicas field would reset it on every apply.
        assert "replicas" not in deployments[f"poi-{svc}"]["spec"]
    assert hpas["poi-search"]["spec"]["maxReplicas"] == 20
    (pdb,) = of_kind(docs, "PodDisruptionBudget")
    search_labels = deployments["poi-search"]["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= search_labels.items()


def kustomize(directory: Path) -> list[Doc]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc is not None]


@pytest.mark.parametrize(
    "directory", [BASE, *sorted(p for p in OVERLAYS.iterdir() if p.is_dir())], ids=lambda p: p.name
)
def test_kustomize_builds(directory: Path) -> None:
    docs = kustomize(directory)
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    deployments = of_kind(docs, "Deployment")
    assert {service_of(d) for d in deployments} == set(SETTINGS)
    problems = [p for d in deployments for p in hardening_problems(d)]
    assert not problems, "\n".join(problems)
    for deployment in deployments:
        svc = service_of(deployment)
        assert {c["image"] for c in all_containers(deployment)} == {f"poi/{svc}:latest"}


def test_dev_overlay_runs_one_small_pod_each() -> None:
    base = {d["metadata"]["name"]: d for d in of_kind(kustomize(BASE), "Deployment")}
    docs = kustomize(OVERLAYS / "dev")
    assert of_kind(docs, "HorizontalPodAutoscaler") == []
    for deployment in of_kind(docs, "Deployment"):
        assert deployment["spec"]["replicas"] == 1
        before = all_containers(base[deployment["metadata"]["name"]])
        for old, new in zip(before, all_containers(deployment), strict=True):
            assert new["resources"] != old["resources"], f"{deployment['metadata']['name']}/{new['name']}"
