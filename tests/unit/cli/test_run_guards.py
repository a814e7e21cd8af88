"""What `poi run` checks before it starts anything: the namespace, the data directory's lock, free ports."""

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from poi_cli import embedded, stack
from poi_cli.main import app

INVALID_NAMESPACES = ["", "Poi", "1poi", "poi-x", "poi_x", "a" * 17, "poi\n", 'poi"; DROP DATABASE postgres; --']


@pytest.mark.parametrize("namespace", INVALID_NAMESPACES)
def test_invalid_namespace_never_names_a_database(namespace: str) -> None:
    """The namespace reaches CREATE DATABASE unquoted, so anything outside the settings' pattern is refused."""
    with pytest.raises(ValueError, match="namespace"):
        stack.database_name(namespace, "registry")


def test_valid_namespaces_name_databases() -> None:
    """The default and the test sessions' namespaces pass."""
    assert stack.database_name("poi", "registry") == "poi_registry"
    assert stack.database_name("t0a1b2c3d", "notify") == "t0a1b2c3d_notify"
    assert stack.database_name("a" * 16, "status") == f"{'a' * 16}_status"


def test_prepare_databases_refuses_before_connecting() -> None:
    """An invalid namespace fails as such, not as a connection error to the (unreachable) server."""
    with pytest.raises(ValueError, match="namespace"):
        asyncio.run(stack.prepare_databases("postgresql://postgres@127.0.0.1:9/postgres", "Bad-Name"))


@pytest.mark.parametrize("how", ["option", "environment"])
def test_poi_run_refuses_an_invalid_namespace_before_starting_anything(how: str, tmp_path: Path) -> None:
    """Both --namespace and POI_NAMESPACE are checked before anything else, even the data directory."""
    (tmp_path / "file").write_text("")
    data_dir = tmp_path / "file" / "data"  # unusable, so that nothing could start if the check were missing
    args = ["run", "--data-dir", str(data_dir)]
    env = {"POI_NAMESPACE": "x; DROP"} if how == "environment" else {}
    if how == "option":
        args += ["--namespace", "x; DROP"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2
    assert "--namespace" in result.output
    assert "lower-case letter" in result.output
    assert "Starting" not in result.output
    assert not data_dir.exists()


def test_second_lock_on_a_data_dir_names_the_holder(tmp_path: Path) -> None:
    """The lock refuses a second holder with the first one's pid, data directory and ports; closing releases it."""
    ports = {"registry": 18001, "postgres": 65432}
    first = stack.lock_data_dir(tmp_path, ports)
    try:
        with pytest.raises(stack.StackBusy) as refused:
            stack.lock_data_dir(tmp_path, {"registry": 28001})
        message = str(refused.value)
        assert f"another poi run (pid {os.getpid()}, data dir {tmp_path})" in message
        assert "registry 18001" in message and "postgres 65432" in message
    finally:
        first.close()
    stack.lock_data_dir(tmp_path, ports).close()


def test_taken_ports_are_named_with_their_holder() -> None:
    """A port something else listens on is refused by name and number, with the process that holds it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        free = embedded.free_port()
        with pytest.raises(stack.StackBusy) as refused:
            stack.check_ports_free({"registry": free, "nats": taken})
    message = str(refused.value)
    assert f"nats {taken} held by pid {os.getpid()}" in message
    assert "registry" not in message
    stack.check_ports_free({"registry": free, "nats": taken})  # free again once the listener is closed


def test_exit_reason_names_the_signal_or_the_code() -> None:
    """The supervisor's words for how a process ended."""
    assert embedded.exit_reason(-9) == "was killed by SIGKILL"
    assert embedded.exit_reason(-15) == "was killed by SIGTERM"
    assert embedded.exit_reason(3) == "exited with code 3"


def _write_postmaster_pid(data: Path, pid: int) -> Path:
    data.mkdir(parents=True, exist_ok=True)
    pid_file = data / "postmaster.pid"
    pid_file.write_text(f"{pid}\n{data}\n1700000000\n55432\n\n127.0.0.1\n  1234567     98304\nready   \n")
    return pid_file


def test_stale_postmaster_pid_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    """kill -9 leaves postmaster.pid behind; its pid no longer runs."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    pid_file = _write_postmaster_pid(tmp_path, gone.pid)
    embedded.remove_stale_postmaster_pid(tmp_path)
    assert not pid_file.exists()


def test_stale_postmaster_pid_reused_by_another_program_is_removed(tmp_path: Path) -> None:
    """A live pid that is not a PostgreSQL of this data directory (pid reuse) does not block a start."""
    pid_file = _write_postmaster_pid(tmp_path, os.getpid())
    embedded.remove_stale_postmaster_pid(tmp_path)
    assert not pid_file.exists()


def test_torn_postmaster_pid_is_removed(tmp_path: Path) -> None:
    """An empty or garbled file (a crash while writing it) is removed too; no file is fine."""
    (tmp_path / "postmaster.pid").write_text("")
    embedded.remove_stale_postmaster_pid(tmp_path)
    assert not (tmp_path / "postmaster.pid").exists()
    embedded.remove_stale_postmaster_pid(tmp_path)
