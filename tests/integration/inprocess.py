"""Running a service app in the test's event loop, and servers of a test's own that it may stop or reconfigure."""

import asyncio
import signal
import subprocess
import sysconfig
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
from fastapi import FastAPI

from poi_cli import embedded

POLL_BOUND_S = 30.0  # generous so CI never flakes; nothing here measures speed


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give a client that calls it in process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service", timeout=10) as client:
            yield client


async def eventually(probe: Callable[[], Awaitable[Any]], what: str, bound_s: float = POLL_BOUND_S) -> Any:
    """Poll until probe returns something truthy."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        result = await probe()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {bound_s:.0f}s")


@contextmanager
def frozen(server: embedded.ServerProcess) -> Iterator[None]:
    """SIGSTOP a server and every process it forked (PostgreSQL's backends leave its process group), then resume."""
    parent = psutil.Process(server.process.pid)
    processes = [parent, *parent.children(recursive=True)]
    for process in processes:
        process.suspend()
    # SIGSTOP takes effect asynchronously: wait until every thread of each process has stopped.
    deadline = time.monotonic() + POLL_BOUND_S
    while not all(_stopped(process) for process in processes):
        assert time.monotonic() < deadline, "the server did not stop"
        time.sleep(0.01)
    try:
        yield
    finally:
        for process in processes:
            if process.is_running():
                process.resume()


def _stopped(process: psutil.Process) -> bool:
    """True once every thread of the process is stopped (Go servers run many)."""
    task_dir = Path(f"/proc/{process.pid}/task")
    states = [(task / "stat").read_text().rsplit(")", 1)[1].split()[0] for task in task_dir.iterdir()]
    return all(state in ("T", "t") for state in states)


class NatsWithUsers:
    """A NATS server of the test's own with an admin user and a restricted one, reconfigurable while it runs."""

    def __init__(self, root: Path, *, restricted_may_not_publish: list[str]) -> None:
        self.root = root
        self.port = embedded.free_port()
        self.config = root / "nats.conf"
        self.allow(restricted_may_not_publish)
        binary = Path(sysconfig.get_path("scripts")) / "nats-server"
        log = root / "nats.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [str(binary), "-c", str(self.config)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.server = embedded.ServerProcess(
            "nats", f"nats://127.0.0.1:{self.port}", process, log, restart=self._not_restartable
        )
        deadline = time.monotonic() + 30
        while not embedded.port_open(self.port):
            if process.poll() is not None or time.monotonic() > deadline:
                embedded.stop(self.server)
                raise RuntimeError(f"nats did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)

    @staticmethod
    def _not_restartable() -> embedded.ServerProcess:
        raise RuntimeError("the test's own NATS is never restarted")

    def url(self, user: str) -> str:
        """The server's URL with a user's credentials (admin or restricted)."""
        return f"nats://{user}:{user}@127.0.0.1:{self.port}"

    def allow(self, denied: list[str]) -> None:
        """Write the configuration: the restricted user may not publish to the denied subjects."""
        deny = ", ".join(f'"{subject}"' for subject in denied)
        self.config.write_text(
            f"""
listen: "127.0.0.1:{self.port}"
jetstream {{ store_dir: "{self.root / "store"}" }}
accounts {{
  POI {{
    jetstream: enabled
    users: [
      {{user: admin, password: admin}}
      {{user: restricted, password: restricted, permissions: {{publish: {{deny: [{deny}]}}}}}}
    ]
  }}
}}
"""
        )

    def reload(self, denied: list[str]) -> None:
        """Change what the restricted user may not publish, without a restart."""
        self.allow(denied)
        self.server.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        """Stop the server (a broker outage)."""
        embedded.stop(self.server)
