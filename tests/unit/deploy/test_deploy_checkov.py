"""checkov on everything one applies (each overlay, rendered) and on the Dockerfiles: no failed check.

A check may be skipped only in deploy/k8s/.checkov.yaml, with its reason on the same line. checkov runs once for the
whole module (it takes about ten seconds), offline.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploytools import DOCKERFILES, K8S, applied_kustomizations, name_of, render_text, tool, workloads

CONFIG = K8S / ".checkov.yaml"


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """checkov's JSON report per framework, over every applied kustomization rendered and both Dockerfiles."""
    scanned = tmp_path_factory.mktemp("checkov")
    for directory in applied_kustomizations():
        (scanned / f"{name_of(directory).replace('/', '-')}.yaml").write_text(render_text(directory))
    for dockerfile in DOCKERFILES:
        name = "Dockerfile" if dockerfile.parent.name == "docker" else f"{dockerfile.parent.name}.Dockerfile"
        shutil.copy(dockerfile, scanned / name)
    env = {**os.environ, "LOG_LEVEL": "ERROR"}
    out = subprocess.run(
        [tool("checkov"), "--directory", str(scanned), "--config-file", str(CONFIG), "--output", "json"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    report = json.loads(out.stdout)
    reports = report if isinstance(report, list) else [report]
    return {r["check_type"]: r for r in reports}


def test_checkov_fails_no_check(checkov_report: dict[str, Any]) -> None:
    assert set(checkov_report) == {"kubernetes", "dockerfile"}
    failures = [
        f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})"
        for report in checkov_report.values()
        for c in report["results"]["failed_checks"]
    ]
    assert not failures, "\n".join(failures)
    for framework, report in checkov_report.items():
        assert report["summary"]["parsing_errors"] == 0, framework
        assert report["summary"]["passed"] > 0, framework


def test_checkov_saw_every_workload_and_dockerfile(checkov_report: dict[str, Any]) -> None:
    seen = {c["resource"] for c in checkov_report["kubernetes"]["results"]["passed_checks"]}
    for directory in applied_kustomizations():
        for workload in workloads(yaml.safe_load_all(render_text(directory))):
            meta = workload["metadata"]
            assert f"{workload['kind']}.{meta['namespace']}.{meta['name']}" in seen, name_of(directory)
    assert checkov_report["dockerfile"]["summary"]["resource_count"] == len(DOCKERFILES)


def test_every_skipped_check_says_why() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    skipped = config["skip-check"]
    assert all(re.fullmatch(r"CKV2?_[A-Z0-9]+_\d+", check) for check in skipped), skipped
    lines = {m.group(1): m.group(2) for m in re.finditer(r"^\s*-\s*(CKV\S+)\s*#\s*(.+)$", CONFIG.read_text(), re.M)}
    for check in skipped:
        assert len(lines.get(check, "").split()) >= 8, f"{check}: say why it is skipped, on its line"
    # No skip hidden in an annotation of a manifest either.
    for path in K8S.rglob("*.yaml"):
        assert "checkov.io/skip" not in path.read_text(), f"{path}: skip checks in {CONFIG.name}, with a reason"


def test_the_scan_covers_what_one_applies() -> None:
    """Every kustomization one applies is an overlay; the bases are scanned through them."""
    applied = {name_of(d) for d in applied_kustomizations()}
    assert applied == {"overlays/dev", "overlays/prod", "infra/dev", "infra/prod"}
    assert all(isinstance(p, Path) and p.exists() for p in DOCKERFILES)
