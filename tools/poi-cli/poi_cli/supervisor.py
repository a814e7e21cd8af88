"""`poi run`'s supervision: reap a server or service that dies, say why, and start it again with backoff."""

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from poi_cli import embedded


class GaveUp(RuntimeError):
    """A process kept crashing soon after every start."""


@dataclass
class Child:
    """A process `poi run` started, how to start it again, and how its recent starts went."""

    name: str
    log: Path
    start: Callable[[], subprocess.Popen[bytes]]
    stop_signal: signal.Signals
    process: subprocess.Popen[bytes] | None
    started_at: float
    fast_crashes: int = 0
    restart_at: float = 0.0


class Supervisor:
    """Watches the servers and services of one `poi run`; restarts what dies, stops everything in order."""

    def __init__(
        self,
        *,
        report: Callable[[str], None],
        first_delay_s: float = 1.0,
        max_delay_s: float = 15.0,
        fast_crash_s: float = 30.0,
        max_fast_crashes: int = 5,
        log_lines: int = 10,
    ) -> None:
        self.report = report
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.fast_crash_s = fast_crash_s
        self.max_fast_crashes = max_fast_crashes
        self.log_lines = log_lines
        self.servers: list[Child] = []
        self.services: list[Child] = []

    def adopt_server(self, server: embedded.ServerProcess) -> None:
        """Watch an embedded server that is already listening."""
        self.servers.append(
            Child(
                server.name,
                server.log,
                start=lambda: server.restart().process,
                stop_signal=embedded.stop_signal(server.name),
                process=server.process,
                started_at=time.monotonic(),
            )
        )

    def start_service(self, name: str, log: Path, start: Callable[[], subprocess.Popen[bytes]]) -> None:
        """Start a service process and watch it."""
        child = Child(name, log, start, signal.SIGTERM, process=None, started_at=time.monotonic())
        self.services.append(child)
        child.process = start()

    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        """The running service processes by name."""
        return {c.name: c.process for c in self.services if c.process is not None}

    def check(self) -> None:
        """Reap and report whatever died since the last check; start again whatever is due."""
        for child in (*self.servers, *self.services):
            if child.process is not None and child.process.poll() is not None:
                self._crashed(child, embedded.exit_reason(child.process.returncode))
            if child.process is None and time.monotonic() >= child.restart_at:
                self._restart(child)

    def _crashed(self, child: Child, reason: str) -> None:
        ran_s = time.monotonic() - child.started_at
        child.process = None
        child.fast_crashes = child.fast_crashes + 1 if ran_s < self.fast_crash_s else 0
        tail = self._tail(child.log)
        if child.fast_crashes >= self.max_fast_crashes:
            raise GaveUp(
                f"{child.name} {reason}; it crashed {child.fast_crashes} times in a row within "
                f"{self.fast_crash_s:.0f} s of starting, so poi run gives up. Last lines of {child.log}:\n{tail}"
            )
        delay_s = min(self.max_delay_s, self.first_delay_s * 2**child.fast_crashes)
        child.restart_at = time.monotonic() + delay_s
        self.report(
            f"{child.name} {reason} after {ran_s:.0f} s; restarting it in {delay_s:g} s. "
            f"Last lines of {child.log}:\n{tail}"
        )

    def _tail(self, log: Path) -> str:
        """The log's last lines, each cut to its end (where a JSON log line's exception is)."""
        lines = embedded.log_tail(log, self.log_lines).splitlines()
        return "\n".join(line if len(line) <= 400 else f"…{line[-400:]}" for line in lines)

    def _restart(self, child: Child) -> None:
        child.started_at = time.monotonic()
        try:
            child.process = child.start()
        except Exception as exc:  # e.g. a server that exited before listening: counts as a crash, its log says why
            self._crashed(child, f"did not start ({(str(exc) or type(exc).__name__).splitlines()[0]})")
            return
        self.report(f"{child.name} restarted (pid {child.process.pid}).")

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the services together, then the servers last started first; SIGKILL whatever lingers."""
        _stop_together(self.services, timeout_s)
        for server in reversed(self.servers):
            _stop_together([server], timeout_s)


def _stop_together(children: list[Child], timeout_s: float) -> None:
    running = [(c.process, c.stop_signal) for c in children if c.process is not None and c.process.poll() is None]
    for proc, stop_signal in running:
        proc.send_signal(stop_signal)
    deadline = time.monotonic() + timeout_s
    for proc, _ in running:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
