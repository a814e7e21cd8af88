"""`poi run`'s supervisor with small local processes: reap, report, restart with backoff, give up, stop."""

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from poi_cli.supervisor import GaveUp, Supervisor

SLEEPER = "import time; print('sleeper up', flush=True); time.sleep(120)"
CRASHER = "import sys; print('cannot bind: address in use', flush=True); sys.exit(3)"


def python(code: str, log: Path) -> Callable[[], subprocess.Popen[bytes]]:
    """A start function for a Python one-liner that logs to log."""

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT)

    return start


def check_until(supervisor: Supervisor, done: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Run the supervisor's checks until done() holds."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        supervisor.check()
        time.sleep(0.02)


def test_killed_process_is_reaped_reported_and_restarted_while_others_keep_running(tmp_path: Path) -> None:
    """A SIGKILLed child leaves no zombie, is named with its signal and log, and comes back; its sibling is left be."""
    reports: list[str] = []
    supervisor = Supervisor(report=reports.append, first_delay_s=0.05)
    supervisor.start_service("alpha", tmp_path / "alpha.log", python(SLEEPER, tmp_path / "alpha.log"))
    supervisor.start_service("beta", tmp_path / "beta.log", python(SLEEPER, tmp_path / "beta.log"))
    try:
        check_until(supervisor, lambda: "sleeper up" in (tmp_path / "alpha.log").read_text(), "alpha's log")
        alpha, beta = supervisor.processes()["alpha"], supervisor.processes()["beta"]
        alpha.kill()
        check_until(supervisor, lambda: any("restarted" in r for r in reports), "alpha's restart")
        assert reports[0].startswith("alpha was killed by SIGKILL")
        assert "sleeper up" in reports[0] and str(tmp_path / "alpha.log") in reports[0]
        assert not psutil.pid_exists(alpha.pid) or psutil.Process(alpha.pid).status() != psutil.STATUS_ZOMBIE
        assert supervisor.processes()["alpha"].pid != alpha.pid
        assert supervisor.processes()["alpha"].poll() is None
        assert supervisor.processes()["beta"] is beta and beta.poll() is None
        assert not any(r.startswith("beta") for r in reports)
    finally:
        supervisor.stop()
    assert all(p.poll() is not None for p in (alpha, beta, *supervisor.processes().values()))


def test_repeated_fast_crashes_back_off_then_give_up(tmp_path: Path) -> None:
    """Each fast crash doubles the delay up to the cap; after the limit it gives up, naming the child and why."""
    reports: list[str] = []
    supervisor = Supervisor(
        report=reports.append, first_delay_s=0.01, max_delay_s=0.04, fast_crash_s=60, max_fast_crashes=4
    )
    supervisor.start_service("gamma", tmp_path / "gamma.log", python(CRASHER, tmp_path / "gamma.log"))
    with pytest.raises(GaveUp) as gave_up:
        check_until(supervisor, lambda: False, "giving up")
    supervisor.stop()
    crashes = [r for r in reports if r.startswith("gamma exited with code 3")]
    assert [r.split("restarting it in ")[1].split(" s.")[0] for r in crashes] == ["0.02", "0.04", "0.04"]
    message = str(gave_up.value)
    assert message.startswith("gamma exited with code 3; it crashed 4 times in a row")
    assert "cannot bind: address in use" in message


def test_a_crash_after_a_long_run_starts_the_count_afresh(tmp_path: Path) -> None:
    """Only crashes soon after a start count toward giving up."""
    reports: list[str] = []
    supervisor = Supervisor(report=reports.append, first_delay_s=0.01, fast_crash_s=0, max_fast_crashes=1)
    supervisor.start_service("delta", tmp_path / "delta.log", python(CRASHER, tmp_path / "delta.log"))
    try:
        check_until(supervisor, lambda: sum("restarted" in r for r in reports) >= 3, "three restarts")
    finally:
        supervisor.stop()
    assert all("restarting it in 0.01 s" in r for r in reports if r.startswith("delta exited"))
