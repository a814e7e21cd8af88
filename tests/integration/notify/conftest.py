"""A migrated notify database of each test's own, and numbers in it."""

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry, Counter
from pydantic import SecretStr

from poi_cli import stack
from poi_notify import data
from poi_notify.app import MIGRATIONS
from poi_notify.phones.service import phone_hash
from poi_notify.sms.sender import SmsCounters
from poi_shared import db

pytestmark = pytest.mark.integration
KEY = SecretStr("test-phone-key")


@pytest_asyncio.fixture
async def notify_database_url(infra: stack.Infrastructure, namespace: str) -> str:
    """A fresh, migrated notify database."""
    name = f"{namespace}_notify_{secrets.token_hex(3)}"
    await db.ensure_database(infra.database_url, name)
    url = db.database_url(infra.database_url, name)
    await db.migrate(url, MIGRATIONS)
    return url


@pytest_asyncio.fixture
async def notify_db(notify_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on that database."""
    pool = await db.create_pool(notify_database_url, timeout_s=10)
    yield pool
    await pool.close()


async def add_number(pool: asyncpg.Pool, e164: str, *, confirmed: bool = True, language: str = "uk") -> str:
    """A number notify knows (confirmed by default); its hash."""
    hashed = phone_hash(KEY, e164)
    async with pool.acquire() as conn:
        await data.ensure_phone(conn, phone_hash=hashed, e164=e164, language=language, latin=False)
        if confirmed:
            await conn.execute("UPDATE phones SET confirmed_at = now() WHERE phone_hash = $1", hashed)
    return hashed


def counters() -> SmsCounters:
    """Counters on a registry of their own."""
    registry = CollectorRegistry()
    return SmsCounters(
        sent=Counter("poi_sms_sent", "", ["provider"], registry=registry),
        failed=Counter("poi_sms_failed", "", ["provider"], registry=registry),
        throttled=Counter("poi_sms_throttled", "", ["provider"], registry=registry),
    )
