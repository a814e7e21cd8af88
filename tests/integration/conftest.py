"""Fixtures for tests that talk to the real servers."""

import secrets
from collections.abc import AsyncIterator

import asyncpg
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS

from poi_cli import stack
from poi_shared import db, jetstream
from poi_shared.db import SHARED_MIGRATIONS

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def shared_db(infra: stack.Infrastructure, namespace: str) -> AsyncIterator[asyncpg.Pool]:
    """A fresh database holding the shared tables (outbox, inbox)."""
    name = f"{namespace}_shared_{secrets.token_hex(3)}"
    await db.ensure_database(infra.database_url, name)
    url = db.database_url(infra.database_url, name)
    await db.migrate(url, [("shared", SHARED_MIGRATIONS)])
    pool = await db.create_pool(url, timeout_s=10)
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def nc(infra: stack.Infrastructure, namespace: str) -> AsyncIterator[NATS]:
    """A NATS connection with the contract's streams provisioned under the session namespace."""
    conn = await nats.connect(infra.nats_url)
    await jetstream.ensure_streams(conn.jetstream(), namespace)
    yield conn
    await conn.close()
