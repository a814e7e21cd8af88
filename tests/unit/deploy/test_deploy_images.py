"""The Dockerfiles: hadolint-clean, multi-stage from the lock file, non-root, no installer where the service runs."""

import json
import re
import subprocess
from pathlib import Path

import pytest
from deploytools import DOCKERFILES, INFRA, ROOT, SERVICES, load, name_of, render, tool

SERVICE_DOCKERFILE, KANNEL_DOCKERFILE = DOCKERFILES


def stages(dockerfile: Path) -> list[list[str]]:
    """The instructions of each build stage (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    result: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(line)
    return result


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    out = subprocess.run(
        [tool("hadolint"), "--no-color", "--format", "json", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(out.stdout or "[]")
    assert out.returncode == 0 and not findings, findings or out.stderr


def test_service_image_is_built_in_one_stage_and_run_in_another() -> None:
    build, runtime = stages(SERVICE_DOCKERFILE)
    assert build[0].split()[1] == runtime[0].split()[1], "the venv only runs under the Python it was built with"
    assert ":latest" not in build[0] and ":" in build[0]
    install = next(line for line in build if "uv pip install" in line)
    # The lock's pins and hashes, and only the service's own packages on top.
    assert "-c requirements.txt" in install and "--verify-hashes" in install
    assert "./shared" in install and "./services/${SERVICE}" in install
    assert any(line.startswith("COPY requirements.txt") for line in build)


def test_the_runtime_stage_runs_as_a_numeric_non_root_user_without_installers() -> None:
    _, runtime = stages(SERVICE_DOCKERFILE)
    users = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert users, "no USER in the runtime stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) >= 10000 and gid.isdigit()
    body = "\n".join(runtime)
    assert "pip install" not in body and "uv " not in body and "apt-get install" not in body
    assert "pip uninstall" in body, "pip and setuptools leave the runtime image"
    copies = [line for line in runtime if line.startswith("COPY ")]
    assert copies == ["COPY --from=build /app/.venv /app/.venv"], "only the built venv reaches the runtime image"


def test_the_image_starts_the_server_the_deployments_start() -> None:
    """The image's CMD and the Deployments' command run the same server with the same flags."""
    _, runtime = stages(SERVICE_DOCKERFILE)
    (cmd,) = [line for line in runtime if line.startswith("CMD ")]
    shell_line = json.loads(cmd.removeprefix("CMD "))[-1]
    for svc in SERVICES:
        (deployment,) = [d for d in load(ROOT / "deploy/k8s/base" / f"{svc}.yaml") if d["kind"] == "Deployment"]
        (server,) = deployment["spec"]["template"]["spec"]["containers"]
        expected = " ".join(server["command"]).replace(f"poi_{svc}.app", "poi_${POI_SERVICE}.app")
        assert shell_line.replace('\\"', "").replace('"', "") == f"exec {expected}"


def test_kannel_image_pins_the_package_the_overlays_name() -> None:
    (stage,) = stages(KANNEL_DOCKERFILE)
    (arg,) = [line for line in stage if line.startswith("ARG KANNEL_VERSION=")]
    version = arg.split("=", 1)[1]
    assert any('"kannel=${KANNEL_VERSION}"' in line for line in stage)
    assert any(re.fullmatch(r"USER \d{5}:\d{5}", line) for line in stage)
    for overlay in (INFRA / "dev", INFRA / "prod"):
        images = {
            c["image"]
            for d in render(overlay)
            if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "kannel"
            for c in [*d["spec"]["template"]["spec"]["initContainers"], *d["spec"]["template"]["spec"]["containers"]]
        }
        assert images == {f"poi/kannel:{version}"}, name_of(overlay)
