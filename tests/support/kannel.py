"""A real Kannel on loopback for tests and benches: bearerbox, smsbox and Kannel's own fakesmsc as the SMSC.

Two fake SMSCs: `mt` receives every message notify sends (one fakesmsc reads them and prints them), `mo` only
brings residents' messages in (a fakesmsc per message), and never gets any outgoing one (allowed-smsc-id).
"""

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote_to_bytes

import httpx

from poi_cli.embedded import free_port, port_open

FAKESMSC = Path("/usr/lib/kannel/test/fakesmsc")
LOGIN = ("notify", "test-sendsms-password")
BOUND_S = 60.0
NOT_INSTALLED = "Kannel is not installed (Debian packages kannel and kannel-extras; .ci/run installs them)"
_RECEIVED = re.compile(r"Got message \d+: <(\S+) (\S+) (\S+) (.*)>$")


def binary(name: str) -> str | None:
    """Where a Kannel program is, if installed."""
    return shutil.which(name) or (f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None)


def installed() -> bool:
    """bearerbox, smsbox and fakesmsc are all there."""
    return bool(binary("bearerbox") and binary("smsbox") and FAKESMSC.exists())


@dataclass(frozen=True)
class Received:
    """A message the SMSC got from Kannel."""

    sender: str
    to: str
    text: str


@dataclass
class Kannel:
    """A running gateway."""

    directory: Path
    sendsms_url: str
    admin_port: int
    mo_port: int
    mt_log: Path
    admin_password: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    log_level: int = 1

    def stop(self) -> None:
        """Take the whole gateway down (bearerbox, smsbox and the SMSC): sendsms no longer answers."""
        _stop(self.processes)
        self.processes.clear()

    def start(self) -> None:
        """Start the gateway (again) with the same configuration and ports; the SMSC's log is kept and added to."""
        _launch(self)

    def received(self) -> list[Received]:
        """Every message the SMSC has received, in order, decoded."""
        found = []
        for line in self.mt_log.read_text(errors="replace").splitlines():
            match = _RECEIVED.search(line)
            if match is None:
                continue
            sender, to, kind, data = match.groups()
            if kind == "ucs-2":  # URL-encoded UCS-2 bytes, a 0x20 byte written as +
                text = unquote_to_bytes(data.replace("+", " ")).decode("utf-16-be")
            else:
                text = unquote_to_bytes(data).decode("latin-1") if kind == "data" else data
            found.append(Received(sender, to.lstrip("+"), text))
        return found

    def received_count(self) -> int:
        """How many messages the SMSC has received (cheaper than decoding them)."""
        with self.mt_log.open("rb") as log:
            return sum(1 for line in log if b"Got message" in line)

    def received_by(self, e164: str) -> list[str]:
        """The texts the number has received."""
        return [r.text for r in self.received() if r.to == e164.lstrip("+")]

    @contextmanager
    def texting(self, sender: str, text: str) -> Iterator[None]:
        """A resident's SMS to the service: a fakesmsc connects, sends it, and is stopped on leaving."""
        if text.isascii():
            message = f"{sender.lstrip('+')} 1434 text {text}"
        else:
            message = f"{sender.lstrip('+')} 1434 ucs2 " + "".join(f"%{b:02X}" for b in text.encode("utf-16-be"))
        log = (self.directory / "mo.log").open("ab")
        process = subprocess.Popen(
            [str(FAKESMSC), "-H", "127.0.0.1", "-r", str(self.mo_port), "-i", "0.01", "-m", "1", message],
            stdout=log,
            stderr=log,
        )
        try:
            yield
        finally:
            _stop([process])
            log.close()

    def online(self) -> bool:
        """Both SMSC connections are up (bearerbox's status page says so)."""
        try:
            status = httpx.get(
                f"http://127.0.0.1:{self.admin_port}/status.txt",
                params={"password": self.admin_password},
                timeout=2,
            ).text
        except httpx.HTTPError:
            return False
        return bool(re.search(r"\bmt\[mt\].*online", status))


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in reversed(processes):
        if process.poll() is None:
            process.terminate()
    for process in reversed(processes):
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until(condition: object, what: str, bound_s: float = BOUND_S) -> None:
    """Poll condition() until true."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {bound_s:.0f} s")


@contextmanager
def kannel(directory: Path, *, inbound_url: str | None = None, log_level: int = 1) -> Iterator[Kannel]:
    """Start the gateway in directory; inbound SMS go to inbound_url (with %p and %a appended as from, text).

    log_level: Kannel's 0 (debug) to 4 (panic); a bench uses 2 so that logging every message costs nothing.
    """
    ports = {name: free_port() for name in ("admin", "box", "sendsms", "mt", "mo")}
    admin_password = "test-admin-password"
    service = f'get-url = "{inbound_url}&from=%p&text=%a"\n' if inbound_url else 'text = "Points of Invincibility"\n'
    config = f"""group = core
admin-port = {ports["admin"]}
admin-interface = 127.0.0.1
admin-password = {admin_password}
admin-allow-ip = "127.0.0.1"
smsbox-port = {ports["box"]}
smsbox-interface = 127.0.0.1
box-allow-ip = "127.0.0.1"
dlr-storage = internal
log-level = {log_level}

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {ports["box"]}
sendsms-port = {ports["sendsms"]}
sendsms-interface = 127.0.0.1
mo-recode = true
log-level = {log_level}

group = sendsms-user
username = "{LOGIN[0]}"
password = "{LOGIN[1]}"
max-messages = 3
concatenation = true

group = sms-service
keyword = default
catch-all = true
max-messages = 0
{service}
group = smsc
smsc = fake
smsc-id = mt
port = {ports["mt"]}
connect-allow-ip = 127.0.0.1

group = smsc
smsc = fake
smsc-id = mo
port = {ports["mo"]}
connect-allow-ip = 127.0.0.1
allowed-smsc-id = mo
"""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kannel.conf").write_text(config)
    gateway = Kannel(
        directory=directory,
        sendsms_url=f"http://127.0.0.1:{ports['sendsms']}/cgi-bin/sendsms",
        admin_port=ports["admin"],
        mo_port=ports["mo"],
        mt_log=directory / "fakesmsc-mt.log",
        admin_password=admin_password,
        ports=ports,
        log_level=log_level,
    )
    try:
        _launch(gateway)
        yield gateway
    finally:
        _stop(gateway.processes)


def _launch(gateway: Kannel) -> None:
    """bearerbox, then smsbox, then fakesmsc as the SMSC; wait until messages can go through."""
    ports, log_level, directory = gateway.ports, gateway.log_level, gateway.directory
    bearerbox, smsbox = binary("bearerbox"), binary("smsbox")
    assert bearerbox and smsbox, NOT_INSTALLED
    with (directory / "bearerbox.log").open("ab") as log:
        gateway.processes.append(
            subprocess.Popen([bearerbox, "-v", str(log_level), "kannel.conf"], cwd=directory, stdout=log, stderr=log)
        )
    wait_until(lambda: port_open(ports["box"]), "bearerbox listens for smsbox")
    with (directory / "smsbox.log").open("ab") as log:
        gateway.processes.append(
            subprocess.Popen([smsbox, "-v", str(log_level), "kannel.conf"], cwd=directory, stdout=log, stderr=log)
        )
    with gateway.mt_log.open("ab") as log:
        fake = [str(FAKESMSC), "-H", "127.0.0.1", "-r", str(ports["mt"]), "-i", "1", "-m", "0", "unused"]
        gateway.processes.append(subprocess.Popen(fake, stdout=log, stderr=log))
    wait_until(lambda: port_open(ports["sendsms"]), "smsbox serves sendsms")
    wait_until(gateway.online, "the SMSC is connected")
