"""Reading and rendering deploy/: kustomize builds, label selectors, NetworkPolicy and Ingress semantics."""

import copy
import functools
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"
OVERLAYS = K8S / "overlays"
INFRA = K8S / "infra"
DOCKERFILES = (DEPLOY / "docker" / "Dockerfile", DEPLOY / "docker" / "kannel" / "Dockerfile")
KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"
SERVICES = ("registry", "status", "search", "notify")
APP_NAMESPACE, INFRA_NAMESPACE = "poi", "poi-infra"
# Kinds of the operators the manifests rely on; kubernetes-validate has no schema for them, the tests check them.
CRD_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("postgresql.cnpg.io/v1", "Cluster"),
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: many renders to parse

Doc = dict[str, Any]


def load(path: Path) -> list[Doc]:
    """Every YAML document of a file."""
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def kustomizations() -> list[Path]:
    """Every directory with a kustomization, base and infra/base included."""
    return sorted(p.parent for p in K8S.rglob("kustomization.yaml"))


def applied_kustomizations() -> list[Path]:
    """The directories one applies to a cluster (the overlays of the services and of the data tier)."""
    return [*sorted(p for p in OVERLAYS.iterdir() if p.is_dir()), INFRA / "dev", INFRA / "prod"]


def name_of(directory: Path) -> str:
    """deploy/k8s/overlays/dev -> overlays/dev."""
    return directory.relative_to(K8S).as_posix()


def tool(name: str) -> str:
    """A command-line tool from the locked dev dependencies (next to this Python), else from PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: run `make install` (it is a locked dev dependency)"
    return found


@functools.cache
def render_text(directory: Path) -> str:
    """`kubectl kustomize` of a directory, as YAML text."""
    out = subprocess.run([tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"{name_of(directory)}: {out.stderr}"
    return out.stdout


@functools.cache
def _parsed(directory: Path) -> list[Doc]:
    return [doc for doc in yaml.load_all(render_text(directory), Loader=YAML_LOADER) if doc is not None]


def render(directory: Path) -> list[Doc]:
    """`kubectl kustomize` of a directory, as documents (a fresh copy each call, free to modify)."""
    return copy.deepcopy(_parsed(directory))


def of_kind(docs: Iterable[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def by_name(docs: Iterable[Doc], kind: str) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in of_kind(docs, kind)}


def workloads(docs: Iterable[Doc]) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] in WORKLOAD_KINDS]


def pod_spec(workload: Doc) -> Doc:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: Doc) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def all_containers(workload: Doc) -> list[Doc]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def container_ports(workload: Doc) -> dict[str | int, int]:
    """Every port of the pod, by number and by name, to its number."""
    ports: dict[str | int, int] = {}
    for container in pod_spec(workload)["containers"]:
        for port in container.get("ports", []):
            ports[port["containerPort"]] = port["containerPort"]
            if "name" in port:
                ports[port["name"]] = port["containerPort"]
    return ports


def service_of(deployment: Doc) -> str:
    """poi-search -> search."""
    name = deployment["metadata"]["name"]
    assert name.startswith("poi-"), name
    return name.removeprefix("poi-")


def matches(selector: Doc | None, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against labels; an empty selector matches all."""
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


# NetworkPolicy semantics (the subset the manifests use): pod and namespace selectors, ipBlocks, ports by number
# or by the destination pod's port name.


def namespace_labels(name: str) -> dict[str, str]:
    """The label every namespace carries; the selectors here use only that one."""
    return {"kubernetes.io/metadata.name": name}


class Pod:
    """A pod template placed in a namespace: what NetworkPolicies select."""

    def __init__(self, namespace: str, labels: dict[str, str], ports: dict[str | int, int] | None = None) -> None:
        self.namespace, self.labels, self.ports = namespace, labels, ports or {}

    @classmethod
    def of(cls, workload: Doc) -> "Pod":
        return cls(workload["metadata"]["namespace"], pod_labels(workload), container_ports(workload))

    def __repr__(self) -> str:
        return f"Pod({self.namespace}, {self.labels})"


def _peer_matches(peer: Doc, policy_namespace: str, pod: Pod | None, ip: str | None) -> bool:
    if "ipBlock" in peer:
        return ip is not None and ip_in_block(ip, peer["ipBlock"])
    if pod is None:
        return False
    if "namespaceSelector" in peer:
        if not matches(peer["namespaceSelector"], namespace_labels(pod.namespace)):
            return False
    elif pod.namespace != policy_namespace:
        return False
    return matches(peer.get("podSelector"), pod.labels)


def _port_matches(rule_ports: list[Doc] | None, port: int, named: dict[str | int, int]) -> bool:
    if not rule_ports:
        return True
    for entry in rule_ports:
        wanted = entry.get("port")
        if wanted is None or wanted == port or named.get(wanted) == port:
            return True
    return False


def _allowed(
    policies: list[Doc], direction: str, subject: Pod, peer: Pod | None, ip: str | None, port: int, ports: Doc
) -> bool:
    """Whether the policies selecting `subject` let this direction's traffic through (isolated only if selected)."""
    kind = direction.capitalize()
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == subject.namespace
        and matches(p["spec"]["podSelector"], subject.labels)
        and kind in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True
    key = "from" if direction == "ingress" else "to"
    for policy in selecting:
        for rule in policy["spec"].get(direction, []):
            peers = rule.get(key)
            peer_ok = not peers or any(_peer_matches(x, policy["metadata"]["namespace"], peer, ip) for x in peers)
            if peer_ok and _port_matches(rule.get("ports"), port, ports):
                return True
    return False


def flow_allowed(policies: list[Doc], source: Pod, destination: Pod, port: int) -> bool:
    """Whether source may open a TCP connection to destination's port: egress of one and ingress of the other."""
    out = _allowed(policies, "egress", source, destination, None, port, destination.ports)
    into = _allowed(policies, "ingress", destination, source, None, port, destination.ports)
    return out and into


def egress_to_ip_allowed(policies: list[Doc], source: Pod, ip: str, port: int) -> bool:
    """Whether source may reach an address outside the cluster."""
    return _allowed(policies, "egress", source, None, ip, port, {})


def ip_in_block(ip: str, block: Doc) -> bool:
    import ipaddress

    address = ipaddress.ip_address(ip)
    if address not in ipaddress.ip_network(block["cidr"]):
        return False
    return not any(address in ipaddress.ip_network(e) for e in block.get("except", []))


# Ingress semantics of ingress-nginx with use-regex: every path is a case-insensitive regular expression anchored
# at the start; the longest matching path wins (the controller orders locations by length).


def ingress_routes(docs: Iterable[Doc]) -> list[tuple[str, str, str]]:
    """(path, service, port) of every rule of every Ingress."""
    routes = []
    for ingress in of_kind(docs, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                routes.append((path["path"], backend["name"], backend["port"].get("name") or backend["port"]["number"]))
    return routes


def route(docs: Iterable[Doc], request_path: str) -> str | None:
    """The Service a request path reaches, or None."""
    candidates = [(p, svc) for p, svc, _ in ingress_routes(docs) if re.match(p, request_path, re.IGNORECASE)]
    if not candidates:
        return None
    return max(candidates, key=lambda c: len(c[0]))[1]
