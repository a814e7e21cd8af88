"""Kannel as deploy/k8s/infra runs it: the pod's own assembly script and template, a region's SMSC from a Secret
volume, and an SMS sent through sendsms reaching the SMSC (Kannel's fakesmsc)."""

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from poi_cli.embedded import free_port, port_open

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
KANNEL_MANIFEST = ROOT / "deploy" / "k8s" / "infra" / "base" / "kannel.yaml"
FAKESMSC = Path("/usr/lib/kannel/test/fakesmsc")
PORTS = {"admin": 13000, "box": 13001, "sendsms": 13013}
LOGIN = ("notify", "s3cretlogin")
BOUND_S = 30.0


def binary(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}",) if os.access(p, os.X_OK)), None)


@dataclass
class Gateway:
    """A running bearerbox + smsbox + fakesmsc, configured the way the pod is."""

    sendsms_port: int
    config_dir: Path
    smsc_log: Path


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} within {BOUND_S} s")


def secret_volume(directory: Path, files: dict[str, str]) -> None:
    """Lay files out as Kubernetes mounts a Secret: a timestamped directory, a ..data link to it, links to files."""
    real = directory / "..2026_01_19_10_00_00.000000001"
    real.mkdir(parents=True)
    for name, text in files.items():
        (real / name).write_text(text)
    (directory / "..data").symlink_to(real.name)
    for name in files:
        (directory / name).symlink_to(f"..data/{name}")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    bearerbox, smsbox = binary("bearerbox"), binary("smsbox")
    if not (bearerbox and smsbox and FAKESMSC.exists()):
        pytest.skip("Kannel is not installed (Debian packages kannel and kannel-extras; .ci/run installs them)")
    (config_map,) = [d for d in yaml.safe_load_all(KANNEL_MANIFEST.read_text()) if d and d["kind"] == "ConfigMap"]
    ports = {name: free_port() for name in PORTS}
    smsc_port = free_port()
    template = config_map["data"]["kannel.conf"]
    # The pod's paths and ports, moved under tmp and onto free loopback ports.
    template = template.replace("/var/spool/kannel", str(tmp_path / "spool"))
    template = template.replace("/run/kannel", str(tmp_path / "run"))
    for name, port in PORTS.items():
        template = template.replace(f" = {port}\n", f" = {ports[name]}\n")
    (tmp_path / "template").mkdir()
    (tmp_path / "template" / "kannel.conf").write_text(template)
    (tmp_path / "assemble.sh").write_text(config_map["data"]["assemble.sh"])
    region = f"group = smsc\nsmsc = fake\nsmsc-id = kharkiv\nport = {smsc_port}\nconnect-allow-ip = 127.0.0.1\n"
    secret_volume(tmp_path / "smsc", {"kharkiv.conf": region})
    env = {
        **os.environ,
        "TEMPLATE": str(tmp_path / "template" / "kannel.conf"),
        "SMSC_DIR": str(tmp_path / "smsc"),
        "OUT": str(tmp_path / "run"),
        "SPOOL": str(tmp_path / "spool"),
        "SENDSMS_USERNAME": LOGIN[0],
        "SENDSMS_PASSWORD": LOGIN[1],
        "GATEWAY_TOKEN": "test-gateway-token",
    }
    assembled = subprocess.run(["sh", str(tmp_path / "assemble.sh")], env=env, capture_output=True, text=True)
    assert assembled.returncode == 0, assembled.stderr
    assert "1 SMSC file(s)" in assembled.stdout
    config = str(tmp_path / "run" / "kannel.conf")
    smsc_log = tmp_path / "fakesmsc.log"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with (tmp_path / "bearerbox.log").open("wb") as log:
            processes.append(subprocess.Popen([bearerbox, "-v", "1", config], stdout=log, stderr=log))
        wait_until(lambda: port_open(ports["box"]), "bearerbox listens for smsbox")
        with (tmp_path / "smsbox.log").open("wb") as log:
            processes.append(subprocess.Popen([smsbox, "-v", "1", config], stdout=log, stderr=log))
        with smsc_log.open("wb") as log:
            fake = [str(FAKESMSC), "-H", "127.0.0.1", "-r", str(smsc_port), "-i", "0.1", "-m", "0", "unused"]
            processes.append(subprocess.Popen(fake, stdout=log, stderr=log))
        wait_until(lambda: port_open(ports["sendsms"]), "smsbox serves sendsms")
        yield Gateway(ports["sendsms"], tmp_path / "run", smsc_log)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in reversed(processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_an_sms_sent_with_notifys_login_reaches_the_regions_smsc(gateway: Gateway) -> None:
    params = {"username": LOGIN[0], "password": LOGIN[1], "from": "POI", "to": "380501234567", "text": "Tepla tochka"}
    url = f"http://127.0.0.1:{gateway.sendsms_port}/cgi-bin/sendsms"

    def delivered() -> bool:
        # fakesmsc connects to bearerbox on its own schedule; until it has, there is no route for the message.
        answer = httpx.get(url, params=params, timeout=5)
        assert answer.status_code in {202, 503}, answer.text
        return answer.status_code == 202

    wait_until(delivered, "sendsms accepts the message")
    wait_until(lambda: "380501234567 text Tepla tochka" in gateway.smsc_log.read_text(), "the SMSC gets the SMS")


def test_sendsms_refuses_any_other_login(gateway: Gateway) -> None:
    params = {"username": LOGIN[0], "password": "not-it", "from": "POI", "to": "380501234567", "text": "x"}
    answer = httpx.get(f"http://127.0.0.1:{gateway.sendsms_port}/cgi-bin/sendsms", params=params, timeout=5)
    assert answer.status_code == 403
    assert "380501234567" not in gateway.smsc_log.read_text()


def test_the_assembled_configuration_keeps_its_secrets_to_the_pod(gateway: Gateway) -> None:
    for path in gateway.config_dir.rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    config = (gateway.config_dir / "kannel.conf").read_text()
    assert "@ADMIN_PASSWORD@" not in config and "admin-password = " in config
    assert "@GATEWAY_TOKEN@" not in config and "/v1/sms/inbound?token=test-gateway-token&from=%p&text=%a" in config
    assert (gateway.config_dir / "smsc" / "kharkiv.conf").is_file()
    assert not (gateway.config_dir / "smsc" / "..data").exists()
