"""The sources under deploy/k8s: laid out as documented, consistent with the kustomizations and with the code."""

import importlib
import re
from pathlib import Path

import pytest
from deploytools import (
    BASE,
    INFRA,
    K8S,
    KUSTOMIZE_API,
    OVERLAYS,
    SERVICES,
    Doc,
    all_containers,
    kustomizations,
    load,
    name_of,
    of_kind,
    pod_spec,
    service_of,
)

from poi_shared.settings import AuthSettings

SECRET_NAME = "poi-secrets"
SECRET_ENV = {
    "registry": {"POI_REGISTRY_DATABASE_URL"},
    "status": {"POI_STATUS_DATABASE_URL", "POI_STATUS_REDIS_URL"},
    "search": {"POI_SEARCH_REDIS_URL"},  # shared rate-limit counters, in the Redis status uses
    "notify": {
        "POI_NOTIFY_DATABASE_URL",
        "POI_NOTIFY_REDIS_URL",
        "POI_NOTIFY_PHONE_KEY",
        "POI_NOTIFY_KANNEL_USERNAME",
        "POI_NOTIFY_KANNEL_PASSWORD",
        "POI_NOTIFY_GATEWAY_TOKEN",
    },
}
MIGRATING = {"registry", "status", "notify"}
PER_SERVICE_KINDS = (
    "ServiceAccount",
    "Deployment",
    "Service",
    "PodDisruptionBudget",
    "ScaledObject",
    "PodMonitor",
    "NetworkPolicy",
)


def settings_class(svc: str) -> type:
    module = importlib.import_module(f"poi_{svc}.settings")
    (cls,) = [v for k, v in vars(module).items() if k.endswith("Settings") and v.__module__ == module.__name__]
    return cls


def is_kustomization(doc: Doc) -> bool:
    return doc.get("apiVersion") == KUSTOMIZE_API and doc.get("kind") in {"Kustomization", "Component"}


def base_docs() -> list[Doc]:
    return [doc for path in sorted(BASE.glob("*.yaml")) for doc in load(path) if not is_kustomization(doc)]


def test_the_layout_is_the_documented_one() -> None:
    names = {p.relative_to(K8S).as_posix() for p in K8S.rglob("*.yaml")}
    wanted = {f"base/{svc}.yaml" for svc in SERVICES} | {
        "base/kustomization.yaml",
        "overlays/dev/kustomization.yaml",
        "overlays/prod/kustomization.yaml",
        "infra/base/kustomization.yaml",
        "infra/dev/kustomization.yaml",
        "infra/prod/kustomization.yaml",
        "infra/nats/values.yaml",
        "infra/nats/values-dev.yaml",
    }
    assert wanted <= names
    assert (K8S.parent / "README.md").exists()


@pytest.mark.parametrize("directory", kustomizations(), ids=name_of)
def test_every_kustomization_lists_every_file_beside_it(directory: Path) -> None:
    (kustomization,) = load(directory / "kustomization.yaml")
    assert is_kustomization(kustomization)
    resources = kustomization.get("resources", [])
    assert len(resources) == len(set(resources))
    for resource in resources:
        assert (directory / resource).exists(), f"{name_of(directory)}: {resource} does not exist"
    # A manifest beside a kustomization but left out of it would never be applied.
    files = {p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert files <= set(resources), f"{name_of(directory)}: not listed: {sorted(files - set(resources))}"


def test_no_secret_is_committed() -> None:
    for path in K8S.rglob("*.yaml"):
        for doc in load(path):
            assert doc.get("kind") != "Secret", f"{path}: secret values are never committed"
            assert "secretGenerator" not in doc, f"{path}: secrets are created in the cluster, not from files here"


def test_base_leaves_the_images_to_the_overlays() -> None:
    (kustomization,) = load(BASE / "kustomization.yaml")
    assert "images" not in kustomization, "each overlay pins its images; the base names placeholders only"
    for overlay in OVERLAYS.iterdir():
        (over,) = load(overlay / "kustomization.yaml")
        assert {i["name"] for i in over["images"]} == {f"poi-{svc}" for svc in SERVICES}, overlay.name


def test_each_service_file_holds_everything_about_its_service() -> None:
    for svc in SERVICES:
        docs = load(BASE / f"{svc}.yaml")
        for kind in PER_SERVICE_KINDS:
            found = [d["metadata"]["name"] for d in of_kind(docs, kind)]
            assert found == [f"poi-{svc}"], f"{svc}.yaml: {kind} {found}"
        assert {d["kind"] for d in docs} == set(PER_SERVICE_KINDS), f"{svc}.yaml holds something else"


def test_containers_run_the_service_and_its_migrations() -> None:
    for deployment in of_kind(base_docs(), "Deployment"):
        svc = service_of(deployment)
        spec = pod_spec(deployment)
        (server,) = spec["containers"]
        assert server["image"] == f"poi-{svc}"
        assert server["command"][:6] == [
            "uvicorn",
            f"poi_{svc}.app:create_app",
            "--factory",
            "--host",
            "0.0.0.0",  # noqa: S104 - a pod must listen on its own IP, not loopback
            "--port",
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


def test_draining_fits_in_the_grace_period() -> None:
    """preStop, uvicorn's graceful shutdown and the NATS drain (nats-py's 30 s default) end before SIGKILL."""
    for deployment in of_kind(base_docs(), "Deployment"):
        spec = pod_spec(deployment)
        (server,) = spec["containers"]
        pre_stop = server["lifecycle"]["preStop"]["sleep"]["seconds"]
        graceful = int(server["command"][server["command"].index("--timeout-graceful-shutdown") + 1])
        supervisor, nats_drain = 10, 30
        assert pre_stop + graceful + supervisor + nats_drain < spec["terminationGracePeriodSeconds"]


def test_env_matches_the_settings_and_secrets_come_from_the_secret() -> None:
    docs = base_docs()
    config_maps = {cm["metadata"]["name"]: cm.get("data", {}) for cm in of_kind(docs, "ConfigMap")}
    auth_fields = {f"POI_AUTH_{field.upper()}" for field in AuthSettings.model_fields}
    for deployment in of_kind(docs, "Deployment"):
        svc = service_of(deployment)
        prefix = f"POI_{svc.upper()}_"
        fields = {prefix + field.upper() for field in settings_class(svc).model_fields}
        assert pod_spec(deployment)["enableServiceLinks"] is False, "service links would add POI_<SERVICE>_* names"
        for container in all_containers(deployment):
            env_from, env = container.get("envFrom", []), container.get("env", [])
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
    for path in [*BASE.glob("*.yaml"), *(INFRA / "base").glob("*.yaml")]:
        for config_map in of_kind(load(path), "ConfigMap"):
            for key, value in config_map.get("data", {}).items():
                assert not any(w in key.upper() for w in ("DATABASE_URL", "REDIS_URL", "SECRET", "PASSWORD", "TOKEN"))
                # Kannel's configuration names passwords only as placeholders filled in at pod start.
                assert set(re.findall(r'password = "?([^"\s\\]+)', value)) <= {"@ADMIN_PASSWORD@", "%s"}, key


def test_settings_read_by_the_services_are_the_ones_the_config_map_sets() -> None:
    """Every key of poi-service-env is a field of every service's settings (it is given to all of them)."""
    (service_env,) = [cm for cm in of_kind(base_docs(), "ConfigMap") if cm["metadata"]["name"] == "poi-service-env"]
    for svc in SERVICES:
        fields = {f.upper() for f in settings_class(svc).model_fields}
        assert set(service_env["data"]) <= fields, svc


def test_nats_runs_three_servers_in_three_zones_that_fsync_before_acknowledging() -> None:
    """The durability the NATS documentation recommends for streams that must not lose acknowledged messages."""
    (values,) = load(INFRA / "nats" / "values.yaml")
    config = values["config"]
    assert config["cluster"]["enabled"] is True and config["cluster"]["replicas"] == 3
    jetstream = config["jetstream"]
    assert jetstream["enabled"] is True and jetstream["memoryStore"]["enabled"] is False
    assert jetstream["fileStore"]["enabled"] is True and jetstream["fileStore"]["pvc"]["enabled"] is True
    assert _gi(jetstream["fileStore"]["maxSize"]) < _gi(jetstream["fileStore"]["pvc"]["size"])
    assert jetstream["merge"]["sync_interval"] == "always"
    spread = values["podTemplate"]["topologySpreadConstraints"]["topology.kubernetes.io/zone"]
    assert spread["whenUnsatisfiable"] == "DoNotSchedule" and spread["maxSkew"] == 1
    assert values["podDisruptionBudget"]["enabled"] is True
    (dev,) = load(INFRA / "nats" / "values-dev.yaml")
    assert dev["config"]["jetstream"]["merge"]["sync_interval"] == "always"
    for chart_values in (values, dev):
        # KEDA's lag triggers and the NetworkPolicies use the monitoring port.
        assert chart_values["config"]["monitor"] == {"enabled": True, "port": 8222}
        tag = chart_values["container"]["image"]["tag"]
        assert re.fullmatch(r"\d+\.\d+\.\d+(-alpine)?", tag), tag
        pod = chart_values["podTemplate"]["merge"]["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["seccompProfile"]["type"] == "RuntimeDefault"
        for part in ("container", "reloader", "promExporter"):
            if chart_values[part].get("enabled", True) is False:
                continue
            security = chart_values[part]["merge"]["securityContext"]
            assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"], part


def _gi(quantity: str) -> int:
    assert quantity.endswith("Gi"), quantity
    return int(quantity.removesuffix("Gi"))


def test_the_deploy_readme_explains_what_ops_need() -> None:
    readme = (K8S.parent / "README.md").read_text()
    for heading in (
        "## Deploy order",
        "## Secrets",
        "### Rotating secrets",
        "## Scaling",
        "## SMS gateway",
        "## Dead letters",
        "## Capacity plan for a 100x spike",
    ):
        assert f"\n{heading}\n" in readme, heading
    # Every Secret a manifest needs is one the README says how to make.
    referenced: set[str] = set()
    for path in K8S.rglob("*.yaml"):
        text = path.read_text()
        referenced |= set(re.findall(r"secretKeyRef: *\{?\s*name: *([a-z0-9-]+)", text))
        referenced |= set(re.findall(r"secretKeyRef:\n\s+name: ([a-z0-9-]+)", text))
        referenced |= set(re.findall(r"secretName: ([a-z0-9-]+)", text))
    assert {"poi-secrets", "poi-dev-auth", "redis-auth", "kannel-sendsms", "kannel-smsc"} <= referenced
    for secret in referenced:
        assert f"create secret generic {secret}" in readme, f"README: how is {secret} made?"
    for svc in SERVICES:
        assert f"| {svc} |" in readme, f"README: how does {svc} scale?"
