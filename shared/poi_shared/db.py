"""PostgreSQL: the asyncpg pool, bounded connection waits, and a migrations runner over plain SQL files."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from poi_shared.errors import DependencyUnavailable

log = logging.getLogger(__name__)
SHARED_MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x0B0C6
CONNECT_ERRORS = (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError)
DEFAULT_ACQUIRE_TIMEOUT_S = 5.0
# Server process ids of pooled connections that took session state (see holds_session_state).
_with_session_state: set[int] = set()


class Pool(asyncpg.Pool):
    """asyncpg's pool, where acquire() waits at most acquire_timeout_s unless told otherwise.

    The default covers every acquire, asyncpg's own pool.fetch* shortcuts included, so no request or consumer
    waits for ever on an exhausted pool.
    """

    __slots__ = ("acquire_timeout_s",)

    def __init__(self, *args: Any, acquire_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout_s = acquire_timeout_s

    def acquire(self, *, timeout: float | None = None) -> Any:
        """Acquire a connection, waiting at most timeout (default: the pool's acquire_timeout_s)."""
        return super().acquire(timeout=self.acquire_timeout_s if timeout is None else timeout)


async def create_pool(
    dsn: str,
    *,
    timeout_s: float,
    min_size: int = 2,
    max_size: int = 10,
    acquire_timeout_s: float = DEFAULT_ACQUIRE_TIMEOUT_S,
) -> Pool:
    """Open a pool, retrying until the server answers or the timeout passes."""
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(timeout_s),
        wait=wait_exponential(multiplier=0.2, max=3),
        retry=retry_if_exception_type(CONNECT_ERRORS),
        reraise=True,
    ):
        with attempt:
            # What asyncpg.create_pool does, with our pool class.
            pool = Pool(
                dsn,
                acquire_timeout_s=acquire_timeout_s,
                connection_class=asyncpg.Connection,
                record_class=asyncpg.Record,
                min_size=min_size,
                max_size=max_size,
                max_queries=50_000,
                max_inactive_connection_lifetime=300.0,
                connect=None,
                setup=None,
                init=None,
                reset=_reset_if_needed,
                loop=None,
                command_timeout=30,
                timeout=5,
            )
            await pool
            return pool
    raise AssertionError("unreachable")


def holds_session_state(conn: asyncpg.Connection) -> None:
    """Say, before taking it, that a pooled connection takes session state (a session advisory lock, SET, LISTEN):
    it is reset when given back to the pool. Nothing else is: statements keep their state in their transaction."""
    _with_session_state.add(conn.get_server_pid())


async def _reset_if_needed(conn: asyncpg.Connection) -> None:
    """Reset a connection given back to the pool only if it took session state.

    asyncpg's default reset (unlock advisory locks, close cursors, unlisten, reset settings) is one more round trip
    per use of a connection; a status report is otherwise two. asyncpg rolls back an open transaction and drops
    listener callbacks itself before calling this.
    """
    pid = conn.get_server_pid()
    if pid in _with_session_state:
        _with_session_state.discard(pid)
        await conn.execute(conn.get_reset_query())


@asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection; an exhausted pool or a server that does not answer is DependencyUnavailable (503)."""
    try:
        conn = await pool.acquire()
    except (TimeoutError, *CONNECT_ERRORS) as exc:
        raise DependencyUnavailable("postgresql") from exc
    try:
        yield conn
    finally:
        await pool.release(conn)


async def migrate(dsn: str, sources: list[tuple[str, Path]]) -> list[str]:
    """Apply, in order and once each, the *.sql files of each (component, folder); returns what ran."""
    applied: list[str] = []
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for component, folder in sources:
            for path in sorted(folder.glob("*.sql")):
                version = f"{component}/{path.name}"
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(path.read_text())
                    await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
                log.info("applied migration %s", version)
                applied.append(version)
    finally:
        await conn.close()
    return applied


async def ensure_database(server_dsn: str, name: str) -> None:
    """Create a database on the server if it does not exist (development and tests)."""
    conn = await asyncpg.connect(server_dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def database_url(server_dsn: str, name: str) -> str:
    """The same server's URL with another database name."""
    base, _, query = server_dsn.partition("?")
    scheme, _, rest = base.partition("://")
    authority = rest.split("/", 1)[0]
    url = f"{scheme}://{authority}/{name}"
    return f"{url}?{query}" if query else url
