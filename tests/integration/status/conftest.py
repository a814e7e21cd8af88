"""A status app of the module's own, on the session's servers, with helpers to add points and read its events.

Each app gets its own namespace (streams, Redis keys) and database, so what a test counts is its own. Points are
added as the registry's events would add them (data.upsert_known_point), which keeps the tests off the registry.
"""

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import nats
import redis.asyncio as aioredis
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from pydantic import SecretStr

from poi_cli import stack
from poi_shared import db
from poi_shared.auth import TokenVerifier, issue_token
from poi_shared.contracts import STATUS, STREAMS
from poi_shared.envelope import Event, parse_message
from poi_shared.settings import AuthSettings
from poi_status import data
from poi_status.app import MIGRATIONS, create_app
from poi_status.settings import StatusSettings
from tests.integration.inprocess import eventually, serving

SECRET = "status-tests-secret-not-for-production-01234"
KYIV = "UA80000000000093317"


def bearer(*roles: str, katotth: list[str] | None = None, points: list[str] | None = None, sub: str = "t") -> dict:
    """Authorization headers the status apps of these tests accept."""
    token = issue_token(SECRET, subject=sub, roles=list(roles), katotth=katotth, points=points)
    return {"Authorization": f"Bearer {token}"}


@dataclass
class StatusApp:
    """A running status app and what a test needs around it."""

    client: httpx.AsyncClient
    settings: StatusSettings
    pool: asyncpg.Pool
    nc: NATS
    redis: aioredis.Redis

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream()

    async def add_point(
        self,
        *,
        katotth: str = KYIV,
        category: str = "state",
        capacity: int = 100,
        services: tuple[str, ...] = ("heat", "charging"),
        schedule_kind: str = "always",
        visibility: str = "public",
        retired: bool = False,
        point_id: uuid.UUID | None = None,
        version: int = 1,
    ) -> uuid.UUID:
        """A point status knows, as if the registry's event had arrived."""
        point_id = point_id or uuid.uuid4()
        await data.upsert_known_point(
            self.pool,
            point_id=point_id,
            version=version,
            code=f"T-{point_id.hex[:8].upper()}",
            name_uk=f"Пункт {point_id.hex[:4]}",
            settlement="Київ",
            katotth=katotth,
            category=category,
            capacity=capacity,
            services=list(services),
            schedule_kind=schedule_kind,
            visibility=visibility,
            retired=retired,
        )
        return point_id

    async def report(self, point_id: uuid.UUID, body: dict[str, Any], **headers: str) -> httpx.Response:
        """A report as the point's operator."""
        return await self.client.post(
            f"/v1/points/{point_id}/status",
            json=body,
            headers={**bearer("operator", points=[str(point_id)]), **headers},
        )

    async def published(self) -> None:
        """Wait until the relay has published everything committed so far."""

        async def outbox_empty() -> bool:
            return await self.pool.fetchval("SELECT count(*) FROM outbox") == 0

        await eventually(outbox_empty, "the relay publishes the outbox")

    async def events(self, key: str) -> list[Event]:
        """Every event published on a status subject (a point id or an area key), oldest first."""
        await self.published()
        stream, subject = STATUS.stream_name(self.settings.namespace), STATUS.subject(self.settings.namespace, key)
        held = (await self.js.stream_info(stream, subjects_filter=subject)).state.subjects or {}
        expected = held.get(subject, 0)
        found: list[Event] = []
        if not expected:
            return found
        sub = await self.js.pull_subscribe(subject, stream=stream)
        try:
            while len(found) < expected:
                msgs = await sub.fetch(expected - len(found), timeout=10)
                found += [parse_message(m.headers, m.data) for m in msgs]
                for m in msgs:
                    await m.ack()
        finally:
            await sub.unsubscribe()
        return found

    async def history(self, point_id: uuid.UUID) -> list[asyncpg.Record]:
        """Every version of the point's status in the history."""
        return await self.pool.fetch("SELECT * FROM status_reports WHERE point_id = $1 ORDER BY version", point_id)


@asynccontextmanager
async def status_app(infra: stack.Infrastructure, namespace: str, **settings: Any) -> AsyncIterator[StatusApp]:
    """A status app with its own namespace and database; settings override the defaults."""
    ns = f"{namespace}s{secrets.token_hex(2)}"
    name = f"{ns}_status"
    await db.ensure_database(infra.database_url, name)
    url = db.database_url(infra.database_url, name)
    await db.migrate(url, MIGRATIONS)
    status_settings = StatusSettings(
        database_url=url, redis_url=infra.redis_url, nats_url=infra.nats_url, namespace=ns, **settings
    )
    app = create_app(status_settings)
    app.state.token_verifier = TokenVerifier(AuthSettings(secret=SecretStr(SECRET), issuer="poi-dev", audience="poi"))
    pool = await db.create_pool(url, timeout_s=10)
    nc = await nats.connect(infra.nats_url)
    cache = aioredis.Redis.from_url(infra.redis_url)
    try:
        async with serving(app) as client:
            yield StatusApp(client, status_settings, pool, nc, cache)
    finally:
        await pool.close()
        for spec in STREAMS:
            try:
                await nc.jetstream().delete_stream(spec.stream_name(ns))
            except nats.js.errors.NotFoundError:
                pass
        await nc.close()
        async for key in cache.scan_iter(f"{ns}:*"):
            await cache.delete(key)
        await cache.aclose()
        conn = await asyncpg.connect(infra.database_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
