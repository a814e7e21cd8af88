"""The services started the way the dev overlay's pods start them: the init container's migration, the server's
command and environment from the rendered manifests, the probes' paths, the dev secret's tokens, SIGTERM.

Only the cluster's addresses change: the session's PostgreSQL, NATS and Redis stand in for poi-infra, the server
listens on a free loopback port instead of 0.0.0.0:8080, and tracing is off (there is no collector here).
"""

import asyncio
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from poi_cli import embedded, stack
from poi_shared import db
from poi_shared.auth import issue_token
from tests.conftest import drop_namespace

pytestmark = pytest.mark.e2e

DEV_OVERLAY = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "overlays" / "dev"
DEV_SECRET = "dev-secret-as-made-by-kubectl-create-secret"
BOUND_S = 90.0

Doc = dict[str, Any]


def rendered_dev_overlay() -> list[Doc]:
    beside = Path(sys.executable).parent / "kubectl"
    kubectl = str(beside) if beside.exists() else shutil.which("kubectl")
    assert kubectl, "kubectl is a locked dev dependency: run `make install`"
    out = subprocess.run([kubectl, "kustomize", str(DEV_OVERLAY)], capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def pod_env(container: Doc, docs: list[Doc], secret_values: dict[tuple[str, str], str]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: ConfigMaps by prefix, then env, secrets resolved."""
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        for key, value in config_maps[source["configMapRef"]["name"]].items():
            env[source.get("prefix", "") + key] = value
    for var in container.get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        env[var["name"]] = secret_values[(ref["name"], ref["key"])] if ref else var["value"]
    return env


def argv(command: list[str], port: int) -> list[str]:
    """The container's command run from this venv, on loopback and a free port."""
    bin_dir = Path(sys.executable).parent
    program = sys.executable if command[0] == "python" else str(bin_dir / command[0])
    args = [program, *command[1:]]
    if "--host" in args:
        args[args.index("--host") + 1] = "127.0.0.1"
        args[args.index("--port") + 1] = str(port)
    return args


@pytest.fixture
def k8s_namespace(infra: stack.Infrastructure) -> Iterator[str]:
    """A namespace (databases, streams, key bucket, Redis keys) of this test's own, removed at the end."""
    ns = f"k{secrets.token_hex(4)}"
    yield ns
    asyncio.run(drop_namespace(infra, ns))


def test_pods_migrate_serve_their_probes_take_dev_tokens_and_stop_on_sigterm(
    infra: stack.Infrastructure, k8s_namespace: str, tmp_path: Path
) -> None:
    docs = rendered_dev_overlay()
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    database_urls = {}
    for service in stack.DATABASE_SERVICES:
        name = stack.database_name(k8s_namespace, service)
        asyncio.run(db.ensure_database(infra.database_url, name))
        database_urls[service] = db.database_url(infra.database_url, name)
    secret_values = {
        **{("poi-secrets", f"{svc}-database-url"): url for svc, url in database_urls.items()},
        ("poi-secrets", "status-redis-url"): infra.redis_url,
        ("poi-secrets", "notify-phone-key"): secrets.token_hex(32),
        ("poi-secrets", "kannel-username"): "notify",
        ("poi-secrets", "kannel-password"): secrets.token_hex(12),
        ("poi-secrets", "notify-gateway-token"): secrets.token_hex(12),
        ("poi-dev-auth", "secret"): DEV_SECRET,
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    try:
        for name, deployment in deployments.items():
            svc = name.removeprefix("poi-")
            spec = deployment["spec"]["template"]["spec"]
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                env = pod_env(container, docs, secret_values)
                env[f"POI_{svc.upper()}_NATS_URL"] = infra.nats_url
                env[f"POI_{svc.upper()}_NAMESPACE"] = k8s_namespace
                env["OTEL_TRACES_EXPORTER"] = "none"
                env["PATH"] = str(Path(sys.executable).parent)
                if container in spec.get("initContainers", []):
                    done = subprocess.run(argv(container["command"], 0), env=env, capture_output=True, timeout=BOUND_S)
                    assert done.returncode == 0, f"{name}/{container['name']}: {done.stderr.decode()[-2000:]}"
                    continue
                ports[name] = embedded.free_port()
                with (tmp_path / f"{name}.log").open("wb") as log:
                    processes[name] = subprocess.Popen(
                        argv(container["command"], ports[name]), env=env, stdout=log, stderr=subprocess.STDOUT
                    )
        with httpx.Client(timeout=5) as client:
            for name, deployment in deployments.items():
                (server,) = deployment["spec"]["template"]["spec"]["containers"]
                base = f"http://127.0.0.1:{ports[name]}"
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    path = server[probe]["httpGet"]["path"]
                    _wait_ok(client, base + path, processes[name], tmp_path / f"{name}.log")
            # A token signed with the dev secret, as `poi token` signs it, gets past authentication (to the body's
            # validation); none, or one signed with another secret, does not.
            points = f"http://127.0.0.1:{ports['poi-registry']}/v1/points"
            for secret, status in ((DEV_SECRET, 422), ("another-secret-of-the-same-length-000", 401)):
                token = issue_token(secret, subject="dev", roles=["admin"])
                assert client.post(points, json={}, headers={"Authorization": f"Bearer {token}"}).status_code == status
            assert client.post(points, json={}).status_code == 401
        for process in processes.values():
            process.terminate()
        for name, process in processes.items():
            grace = deployments[name]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            # Within the pod's grace period, or the kubelet would SIGKILL it mid-drain. uvicorn re-raises the
            # signal once it has shut down, so the exit status is SIGTERM's either way: the log tells them apart.
            assert process.wait(timeout=grace) in (0, -signal.SIGTERM)
            log = (tmp_path / f"{name}.log").read_text()
            assert "Application shutdown complete" in log, log[-2000:]
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def _wait_ok(client: httpx.Client, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited: {log.read_text()[-3000:]}"
        try:
            if client.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer 200 within {BOUND_S} s: {log.read_text()[-3000:]}")
