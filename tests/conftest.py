"""Servers for the tests: an environment URL if set, else testcontainers if Docker answers, else embedded ones."""

import asyncio
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import asyncpg
import nats
import pytest
import redis.asyncio as redis

from poi_cli import embedded, stack
from poi_search.data import keys_bucket
from poi_shared.contracts import STREAMS


def docker_available() -> bool:
    """True if a Docker engine answers (the client alone is not enough)."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


def _containers(missing: set[str], stack_: ExitStack) -> dict[str, str]:
    """Start the missing servers as containers; returns their URLs."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    urls = {}
    if "database" in missing:
        pg = stack_.enter_context(PostgresContainer("postgres:16-alpine", driver=None))
        urls["database"] = pg.get_connection_url()
    if "nats" in missing:
        nc = DockerContainer("nats:2.10-alpine").with_command("-js").with_exposed_ports(4222)
        stack_.enter_context(nc)
        wait_for_logs(nc, "Server is ready")
        urls["nats"] = f"nats://{nc.get_container_host_ip()}:{nc.get_exposed_port(4222)}"
    if "redis" in missing:
        rc = stack_.enter_context(RedisContainer("redis:7-alpine"))
        urls["redis"] = f"redis://{rc.get_container_host_ip()}:{rc.get_exposed_port(6379)}/0"
    return urls


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A fresh directory for a test's own embedded servers, outside pytest's base temp.

    Every pytest run on the machine resets its base temp to 0700, and PostgreSQL runs as another user when the tests
    run as root: a second run starting mid-test would lock PostgreSQL out of its data directory.
    """
    with tempfile.TemporaryDirectory(prefix="poi-test-servers-") as root:
        yield Path(root)


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Infrastructure]:
    """PostgreSQL, NATS with JetStream and Redis for the whole session."""
    urls = {
        "database": os.environ.get("POI_DATABASE_URL"),
        "nats": os.environ.get("POI_NATS_URL"),
        "redis": os.environ.get("POI_REDIS_URL"),
    }
    with ExitStack() as containers:
        missing = {name for name, url in urls.items() if not url}
        if missing and docker_available():
            urls.update(_containers(missing, containers))
        ports = {name: embedded.free_port() for name in stack.EMBEDDED_PORTS}
        infra = stack.start_infrastructure(
            tmp_path_factory.mktemp("embedded"),
            database_url=urls["database"],
            nats_url=urls["nats"],
            redis_url=urls["redis"],
            ports=ports,
            durable=False,
        )
        try:
            yield infra
        finally:
            infra.stop()


@pytest.fixture(scope="session")
def namespace(infra: stack.Infrastructure) -> Iterator[str]:
    """A namespace of this session's own: databases, streams and keys nobody else uses; removed at the end."""
    ns = f"t{secrets.token_hex(4)}"
    yield ns
    asyncio.run(drop_namespace(infra, ns))


async def drop_namespace(infra: stack.Infrastructure, ns: str) -> None:
    """Remove a namespace's databases, streams and Redis keys."""
    conn = await asyncpg.connect(infra.database_url)
    try:
        for name in await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", f"{ns}\\_%"):
            await conn.execute(f'DROP DATABASE IF EXISTS "{name["datname"]}" WITH (FORCE)')
    finally:
        await conn.close()
    nc = await nats.connect(infra.nats_url)
    try:
        js = nc.jetstream()
        # The contract's streams, and search's key-value bucket of integrator keys (a KV_<bucket> stream).
        for name in [*(spec.stream_name(ns) for spec in STREAMS), f"KV_{keys_bucket(ns)}"]:
            try:
                await js.delete_stream(name)
            except nats.js.errors.NotFoundError:
                pass
    finally:
        await nc.close()
    cache = redis.Redis.from_url(infra.redis_url)
    try:
        async for key in cache.scan_iter(f"{ns}:*"):
            await cache.delete(key)
    finally:
        await cache.aclose()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's root folder."""
    return Path(__file__).resolve().parents[1]
