"""A migrated notify database of each test's own, numbers in it, and subscriptions written straight into the
tables (area cells from cells_covering) so the alert tests do not depend on the subscription routes."""

import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry, Counter
from pydantic import SecretStr

from poi_cli import stack
from poi_notify import data
from poi_notify.app import MIGRATIONS
from poi_notify.cells import cells_covering
from poi_notify.phones.service import phone_hash
from poi_notify.settings import NotifySettings
from poi_notify.sms.sender import SmsCounters
from poi_shared import db
from poi_shared.contracts import PointState, StatusState
from poi_shared.envelope import Event

pytestmark = pytest.mark.integration
KEY = SecretStr("test-phone-key")
KYIV_CODE = "UA80000000000093317"
LVIV_CODE = "UA46060250010015970"


@pytest_asyncio.fixture
async def notify_database_url(infra: stack.Infrastructure, namespace: str) -> AsyncIterator[str]:
    """A fresh, migrated notify database, dropped after the test."""
    name = f"{namespace}_notify_{secrets.token_hex(3)}"
    await db.ensure_database(infra.database_url, name)
    url = db.database_url(infra.database_url, name)
    await db.migrate(url, MIGRATIONS)
    yield url
    conn = await asyncpg.connect(infra.database_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def notify_db(notify_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on that database."""
    pool = await db.create_pool(notify_database_url, timeout_s=10)
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def pool(notify_db: asyncpg.Pool) -> asyncpg.Pool:
    """The fresh notify database's pool (the alert tests' name for it)."""
    return notify_db


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


def alert_settings(**changes: Any) -> NotifySettings:
    """Settings for calling the alert functions directly (no connections are made from them)."""
    return NotifySettings(phone_key="test-phone-key", **changes)


async def add_phone(
    pool: asyncpg.Pool,
    *,
    language: str = "uk",
    confirmed: bool = True,
    stopped: bool = False,
    latin: bool = False,
) -> str:
    """A number as the subscription flow leaves it; its phone_hash."""
    digits = f"{secrets.randbelow(10**7):07d}"
    phone_hash = secrets.token_hex(16)
    await pool.execute(
        """INSERT INTO phones (phone_hash, e164, language, latin, confirmed_at, stopped_at)
           VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END, CASE WHEN $6 THEN now() END)""",
        phone_hash,
        f"+38067{digits}",
        language,
        latin,
        confirmed,
        stopped,
    )
    return phone_hash


async def subscribe_point(pool: asyncpg.Pool, phone_hash: str, point_id: uuid.UUID) -> None:
    """The phone follows one point."""
    await pool.execute(
        "INSERT INTO subscriptions (id, phone_hash, kind, point_id) VALUES ($1, $2, 'point', $3)",
        uuid.uuid4(),
        phone_hash,
        point_id,
    )


async def subscribe_area(
    pool: asyncpg.Pool, phone_hash: str, lat: float, lon: float, radius_m: int, services: tuple[str, ...] = ()
) -> None:
    """The phone follows the points within radius_m of a place (optionally only those with some services)."""
    await pool.execute(
        """INSERT INTO subscriptions (id, phone_hash, kind, lat, lon, radius_m, cells, services)
           VALUES ($1, $2, 'area', $3, $4, $5, $6, $7)""",
        uuid.uuid4(),
        phone_hash,
        lat,
        lon,
        radius_m,
        cells_covering(lat, lon, radius_m),
        list(services),
    )


def point_state(**changes: Any) -> PointState:
    """A public point in Kyiv; fields changed as given."""
    point_id = changes.pop("id", None) or uuid.uuid4()
    fields: dict[str, Any] = {
        "id": point_id,
        "code": f"T-{point_id.hex[:6].upper()}",
        "version": 1,
        "name_uk": "Пункт незламності — Ліцей №5, Київ",
        "name_en": "Invincibility Point — Lyceum No. 5, Kyiv",
        "category": "state",
        "host_type": "school",
        "lat": 50.4501,
        "lon": 30.5234,
        "address_uk": "вул. Хрещатик, 1, Київ",
        "address_en": "1 Khreshchatyk St, Kyiv",
        "settlement": "Київ",
        "katotth": KYIV_CODE,
        "capacity": 120,
        "services": ["heat", "charging"],
        "schedule": {"kind": "always"},
        "visibility": "public",
        "updated_at": datetime.now(UTC),
    }
    return PointState.model_validate({**fields, **changes})


def status_state(point_id: uuid.UUID, version: int, state: str, **changes: Any) -> StatusState:
    """A status version of a point."""
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "point_id": point_id,
        "version": version,
        "state": state,
        "reported_at": now,
        "changed_at": now,
        "reported_by": "operator-1",
    }
    return StatusState.model_validate({**fields, **changes})


def event(event_type: str, data: PointState | StatusState, event_id: str | None = None) -> Event:
    """An event as a consumer receives it."""
    return Event(
        id=event_id or str(uuid.uuid4()),
        type=event_type,
        source="/tests",
        subject="",
        time=datetime.now(UTC),
        headers={},
        data=data,
    )


async def messages(pool: asyncpg.Pool, phone_hash: str | None = None) -> list[asyncpg.Record]:
    """Queued SMS, oldest first (all, or one phone's)."""
    return await pool.fetch(
        """SELECT phone_hash, kind, body, parts, not_before, dedup_key FROM sms_messages
           WHERE $1::text IS NULL OR phone_hash = $1 ORDER BY created_at, dedup_key""",
        phone_hash,
    )
