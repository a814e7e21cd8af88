"""The embedded PostgreSQL starts again after a kill -9, even when the pid in its stale postmaster.pid was reused."""

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import asyncpg
import pytest

from poi_cli import embedded

pytestmark = pytest.mark.e2e


async def select_one(url: str) -> int:
    """A query on the server."""
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


def test_postgres_starts_over_a_stale_postmaster_pid(server_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After kill -9, the pid in postmaster.pid belongs to a live program; PostgreSQL alone would refuse to start."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(server_dir))
    server = embedded.start_postgres(server_dir, embedded.free_port(), durable=False)
    server.process.kill()
    server.process.wait()
    pid_file = server_dir / "postgres" / "postmaster.pid"
    assert pid_file.exists()
    # Stand in for pid reuse: a live process of the user PostgreSQL runs as, which it would take for its owner.
    user = embedded.PG_SYSTEM_USER if os.geteuid() == 0 else None
    sleep = shutil.which("sleep")
    assert sleep is not None
    squatter = subprocess.Popen([sleep, "120"], user=user)
    try:
        lines = pid_file.read_text().split("\n")
        pid_file.write_text("\n".join([str(squatter.pid), *lines[1:]]))
        restarted = server.restart()
        try:
            assert asyncio.run(select_one(restarted.url)) == 1
            assert int(pid_file.read_text().split("\n")[0]) == restarted.process.pid
        finally:
            embedded.stop(restarted)
    finally:
        squatter.kill()
        squatter.wait()


def test_postgres_refuses_to_start_twice_on_one_data_dir(server_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A postmaster.pid whose PostgreSQL still runs on this data directory is kept, with a clear error."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(server_dir))
    server = embedded.start_postgres(server_dir, embedded.free_port(), durable=False)
    try:
        with pytest.raises(RuntimeError, match=rf"PostgreSQL \(pid {server.process.pid}\) is already running"):
            embedded.remove_stale_postmaster_pid(server_dir / "postgres")
        assert (server_dir / "postgres" / "postmaster.pid").exists()
        assert server.process.poll() is None
    finally:
        embedded.stop(server)
