"""No secret-looking literal in a committed file outside the tests and benches (their secrets are fixtures).

Secrets come from the environment only (Kubernetes Secrets, `poi run`'s generated development secret).
"""

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # reads the git checkout, not only code
EXEMPT = re.compile(r"^(?:tests|bench)/")  # their signing secrets are throwaway fixtures, as ruff S105 agrees
SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "signed JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    "password in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:(?!\$|\{|<|\*)[^@\s/'\"]{3,}@"),
    "assigned secret": re.compile(
        r"(?i)\b[a-z_]*(?:secret|password|passwd|api_?key|token|phone_key)[a-z_]*\s*[:=]\s*[\"'][A-Za-z0-9+/_=.-]{16,}[\"']"
    ),
}


def committed_files(root: Path) -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True, timeout=60).stdout
    return [root / name for name in listed.decode().split("\0") if name and not EXEMPT.match(name)]


def test_no_secret_literal_is_committed_outside_the_tests(repo_root: Path) -> None:
    found = []
    for path in committed_files(repo_root):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        for kind, pattern in SECRET_PATTERNS.items():
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(repo_root)}:{line}: {kind}: {match.group()[:40]}")
    assert not found, "secret-looking literals:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "leak",
    [
        'POI_AUTH_SECRET = "k3Jd8s9QpLm2Xv7Rt5Wy1Zb4"',
        "postgresql://poi:hunter2hunter2@db.example/poi",
        "-----BEGIN RSA PRIVATE KEY-----",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
    ],
)
def test_the_scan_would_catch_a_leak(leak: str) -> None:
    assert any(pattern.search(leak) for pattern in SECRET_PATTERNS.values())
