"""requirements.txt pins every dependency the packages declare, with hashes and no index addresses."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECTS = [
    ROOT / "pyproject.toml",
    *sorted(ROOT.glob("shared/pyproject.toml")),
    *sorted(ROOT.glob("services/*/pyproject.toml")),
]
PYPROJECTS.append(ROOT / "tools/poi-cli/pyproject.toml")


def pinned() -> dict[str, str]:
    text = (ROOT / "requirements.txt").read_text()
    return {canonicalize_name(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", text, re.M)}


def declared() -> set[str]:
    names: set[str] = set()
    workspace = set()
    for path in PYPROJECTS:
        project = tomllib.loads(path.read_text())
        workspace.add(canonicalize_name(project["project"]["name"]))
        specs = list(project["project"].get("dependencies", []))
        for group in project.get("dependency-groups", {}).values():
            specs += group
        names |= {canonicalize_name(Requirement(s).name) for s in specs}
    return names - workspace


def test_every_declared_dependency_is_pinned() -> None:
    missing = declared() - set(pinned())
    assert not missing, f"not in requirements.txt (run `make lock`): {sorted(missing)}"


def test_every_pin_has_hashes_and_no_index_address() -> None:
    text = (ROOT / "requirements.txt").read_text()
    assert "--hash=sha256:" in text
    assert len(pinned()) > 50
    assert not re.search(r"https?://|--index-url|--extra-index-url|--find-links", text)
