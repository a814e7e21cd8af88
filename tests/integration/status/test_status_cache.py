"""A status read is never older than what was committed beyond the cache TTL, even when Redis refuses the write;
and Redis, once it lost its data, is filled again from PostgreSQL.

Redis is a server of the test's own, so its ACL can be changed: the app's user keeps GET but loses the script
(and DEL) that write the cache after the commit, which is exactly the write that fails.
"""

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
import redis
import redis.asyncio as aioredis

from poi_cli import embedded, stack
from poi_shared import db
from poi_shared.auth import issue_token
from poi_shared.contracts import OpenState, StatusState
from poi_status import cache, data
from poi_status.app import MIGRATIONS, create_app
from poi_status.settings import StatusSettings
from tests.integration.inprocess import eventually, serving

pytestmark = pytest.mark.integration
SECRET = "status-cache-test-secret-0123456789abcdef"
KATOTTH = "UA80000000000093317"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[embedded.ServerProcess]:
    """A Redis of this test's own, with an admin user that keeps every right whatever the app's user loses."""
    server = embedded.start_redis(tmp_path, embedded.free_port(), durable=False)
    try:
        with redis.Redis.from_url(server.url) as admin:
            admin.acl_setuser(
                "admin", enabled=True, passwords=["+admin"], keys=["*"], channels=["*"], commands=["+@all"]
            )
        yield server
    finally:
        embedded.stop(server)


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[embedded.ServerProcess]:
    """A NATS of this test's own: the app's consumers and streams vanish with it."""
    server = embedded.start_nats(tmp_path, embedded.free_port())
    try:
        yield server
    finally:
        embedded.stop(server)


@pytest_asyncio.fixture
async def status_db(infra: stack.Infrastructure, namespace: str) -> str:
    """A fresh status database (dropped with the session's namespace)."""
    name = f"{namespace}_status_{secrets.token_hex(3)}"
    await db.ensure_database(infra.database_url, name)
    url = db.database_url(infra.database_url, name)
    await db.migrate(url, MIGRATIONS)
    return url


def admin_client(server: embedded.ServerProcess) -> aioredis.Redis:
    """A client as the admin user, for the test's own reads and ACL changes."""
    return aioredis.Redis.from_url(server.url, username="admin", password="admin")


async def known_point(database_url: str) -> uuid.UUID:
    """A point status knows of, as if the registry's event had arrived."""
    point_id = uuid.uuid4()
    pool = await db.create_pool(database_url, timeout_s=10)
    try:
        await data.upsert_known_point(
            pool,
            point_id=point_id,
            version=1,
            code=f"T-{point_id.hex[:6].upper()}",
            name_uk="Пункт",
            settlement="Київ",
            katotth=KATOTTH,
            category="state",
            capacity=100,
            services=["heat"],
            schedule_kind="always",
            visibility="public",
            retired=False,
        )
    finally:
        await pool.close()
    return point_id


@pytest_asyncio.fixture
async def status_settings(
    status_db: str, own_redis: embedded.ServerProcess, own_nats: embedded.ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> StatusSettings:
    monkeypatch.setenv("POI_AUTH_SECRET", SECRET)
    return StatusSettings(
        database_url=status_db, redis_url=own_redis.url, nats_url=own_nats.url, namespace="poi", startup_timeout_s=10
    )


@pytest_asyncio.fixture
async def admin(own_redis: embedded.ServerProcess) -> AsyncIterator[aioredis.Redis]:
    client = admin_client(own_redis)
    yield client
    await client.aclose()


def operator(point_id: uuid.UUID) -> dict[str, str]:
    token = issue_token(SECRET, subject="op-1", roles=["operator"], points=[str(point_id)])
    return {"Authorization": f"Bearer {token}"}


async def test_when_redis_refuses_the_write_after_commit_the_old_version_is_deleted(
    status_settings: StatusSettings, admin: aioredis.Redis
) -> None:
    point_id = await known_point(status_settings.database_url)
    key = cache.redis_key(status_settings.namespace, point_id)
    async with serving(create_app(status_settings)) as client:
        first = await client.post(f"/v1/points/{point_id}/status", json={"state": "open"}, headers=operator(point_id))
        assert first.status_code == 201 and first.json()["version"] == 1
        assert cache.decode(await admin.get(key)).version == 1

        # The app's user may still read (and delete), but not run the script that writes the cache.
        await admin.acl_setuser("default", commands=["-eval", "-evalsha"])
        second = await client.post(
            f"/v1/points/{point_id}/status", json={"state": "closed"}, headers=operator(point_id)
        )
        assert second.status_code == 201 and second.json()["version"] == 2
        read = await client.get(f"/v1/points/{point_id}/status")

    assert read.status_code == 200
    assert (read.json()["version"], read.json()["state"]) == (2, "closed"), "served the version the commit replaced"
    assert await admin.get(key) is None


async def test_when_redis_refuses_every_write_the_old_version_lives_no_longer_than_the_ttl(
    status_settings: StatusSettings, admin: aioredis.Redis
) -> None:
    ttl_s = 2.0
    settings = status_settings.model_copy(update={"cache_ttl_s": ttl_s})
    point_id = await known_point(settings.database_url)
    key = cache.redis_key(settings.namespace, point_id)
    async with serving(create_app(settings)) as client:
        first = await client.post(f"/v1/points/{point_id}/status", json={"state": "open"}, headers=operator(point_id))
        assert first.status_code == 201

        await admin.acl_setuser("default", commands=["-eval", "-evalsha", "-del", "-unlink"])
        second = await client.post(
            f"/v1/points/{point_id}/status", json={"state": "closed"}, headers=operator(point_id)
        )
        assert second.status_code == 201 and second.json()["version"] == 2
        # The cached old version could not be replaced nor deleted; it expires by itself within the TTL.
        remaining_ms = await admin.pttl(key)
        assert 0 < remaining_ms <= ttl_s * 1000, f"the cached status must expire within the TTL, has {remaining_ms}"
        await asyncio.sleep(remaining_ms / 1000 + 0.1)
        read = await client.get(f"/v1/points/{point_id}/status")

    assert (read.json()["version"], read.json()["state"]) == (2, "closed")


async def test_with_redis_down_status_is_ready_degraded_and_answers_from_postgresql(
    status_settings: StatusSettings, own_redis: embedded.ServerProcess
) -> None:
    point_id = await known_point(status_settings.database_url)
    async with serving(create_app(status_settings)) as client:
        reported = await client.post(
            f"/v1/points/{point_id}/status", json={"state": "open", "note": "працюємо"}, headers=operator(point_id)
        )
        assert reported.status_code == 201

        embedded.stop(own_redis)
        ready = await client.get("/readyz")
        read = await client.get(f"/v1/points/{point_id}/status")
        # Writes go on too: PostgreSQL is the truth, the cache only makes reads fast.
        again = await client.post(f"/v1/points/{point_id}/status", json={"state": "closed"}, headers=operator(point_id))
        read_again = await client.get(f"/v1/points/{point_id}/status")

    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "degraded" and body["degraded"] == ["redis"]
    assert body["checks"]["postgresql"] == "ok" and body["checks"]["redis"].startswith("failed")
    assert read.status_code == 200 and read.json()["state"] == "open" and read.json()["note"] == "працюємо"
    assert again.status_code == 201
    assert read_again.json()["version"] == 2 and read_again.json()["state"] == "closed"


def state(point_id: uuid.UUID, version: int, note: str) -> StatusState:
    return StatusState(
        point_id=point_id,
        version=version,
        state=OpenState.open,
        note=note,
        reported_at=datetime.now(UTC),
        reported_by="op-1",
    )


@pytest_asyncio.fixture
async def shared_redis(infra: stack.Infrastructure) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(infra.redis_url)
    yield client
    await client.aclose()


async def test_the_cache_script_keeps_newer_versions_and_only_extends_equal_ones(
    shared_redis: aioredis.Redis, namespace: str
) -> None:
    point_id = uuid.uuid4()
    key = cache.redis_key(namespace, point_id)

    async def offer(version: int, note: str) -> bool:
        return await cache.cache_if_newer(
            shared_redis, key, state(point_id, version, note), expires_at=time.monotonic() + 60
        )

    async def held() -> tuple[int, str]:
        cached = cache.decode(await shared_redis.get(key))
        return cached.version, cached.note or ""

    try:
        assert await offer(2, "second")
        assert await held() == (2, "second")
        assert 0 < await shared_redis.pttl(key) <= 60_000

        assert not await offer(1, "first, late"), "an older version must never overwrite a newer one"
        assert await held() == (2, "second")

        await shared_redis.pexpire(key, 1000)
        assert not await offer(2, "second, again"), "an equal version is not written again"
        assert await held() == (2, "second")
        assert await shared_redis.pttl(key) > 1000, "but it may live as long as the later of its two expiries"

        assert await offer(3, "third")
        assert await held() == (3, "third")

        await shared_redis.set(key, b"not json")
        assert await offer(1, "over garbage"), "an unreadable entry is replaced"
        assert await held() == (1, "over garbage")

        assert not await cache.cache_if_newer(
            shared_redis, key, state(point_id, 9, "too late"), expires_at=time.monotonic() - 1
        ), "an entry whose time is up is never written"
        assert await held() == (1, "over garbage")
    finally:
        await shared_redis.delete(key)


async def test_a_read_does_not_outlive_the_ttl_either(status_settings: StatusSettings, admin: aioredis.Redis) -> None:
    settings = status_settings.model_copy(update={"cache_ttl_s": 5.0})
    point_id = await known_point(settings.database_url)
    key = cache.redis_key(settings.namespace, point_id)
    async with serving(create_app(settings)) as client:
        await client.post(f"/v1/points/{point_id}/status", json={"state": "open"}, headers=operator(point_id))
        await admin.delete(key)
        read = await client.get(f"/v1/points/{point_id}/status")
        assert read.status_code == 200
        filled_ms = await admin.pttl(key)
    assert 0 < filled_ms <= 5000, "the entry a read fills must expire within the TTL"


@pytest.fixture
def plain_redis(tmp_path: Path) -> Iterator[embedded.ServerProcess]:
    """A Redis of this test's own, which it stops and replaces with an empty one."""
    server = embedded.start_redis(tmp_path / "first", embedded.free_port(), durable=False)
    try:
        yield server
    finally:
        embedded.stop(server)


async def test_redis_that_lost_its_data_is_filled_again_from_postgresql(
    status_db: str,
    plain_redis: embedded.ServerProcess,
    own_nats: embedded.ServerProcess,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("POI_AUTH_SECRET", SECRET)
    settings = StatusSettings(
        database_url=status_db,
        redis_url=plain_redis.url,
        nats_url=own_nats.url,
        namespace="poi",
        startup_timeout_s=10,
        cache_ttl_s=2.0,  # the keeper rewrites every point each second
    )
    points = [await known_point(status_db) for _ in range(3)]
    never_reported = await known_point(status_db)
    async with serving(create_app(settings)) as client:
        for n, point_id in enumerate(points):
            for _ in range(n + 1):
                response = await client.post(
                    f"/v1/points/{point_id}/status", json={"state": "open"}, headers=operator(point_id)
                )
                assert response.status_code == 201

        embedded.stop(plain_redis)
        during = [(await client.get(f"/v1/points/{p}/status")).json()["version"] for p in points]
        assert during == [1, 2, 3], "with Redis gone, reads come from PostgreSQL"

        # An empty Redis where the old one was: what it held is gone, and comes back from PostgreSQL.
        port = int(plain_redis.url.rsplit(":", 1)[1].split("/")[0])
        replacement = embedded.start_redis(tmp_path / "second", port, durable=False)
        try:
            fresh = aioredis.Redis.from_url(replacement.url)

            async def refilled() -> list[int] | None:
                values = [await fresh.get(cache.redis_key("poi", p)) for p in points]
                if any(v is None for v in values):
                    return None
                return [cache.decode(v).version for v in values]

            assert await eventually(refilled, "the keeper fills Redis again") == [1, 2, 3]
            assert await fresh.get(cache.redis_key("poi", never_reported)) is None, "no status, nothing to keep"
            after = [(await client.get(f"/v1/points/{p}/status")).json()["version"] for p in points]
            assert after == [1, 2, 3]
            await fresh.aclose()
        finally:
            embedded.stop(replacement)


async def test_the_keeper_extends_entries_that_hold_the_current_version_and_writes_the_others(
    status_db: str, shared_redis: aioredis.Redis, namespace: str
) -> None:
    ns = f"{namespace}k"
    current, older, missing = [await known_point(status_db) for _ in range(3)]
    pool = await db.create_pool(status_db, timeout_s=10)
    try:
        await pool.execute(
            """UPDATE point_status SET version = 2, state = 'open', reported_by = 'op-1', reported_at = now(),
                   changed_at = now() WHERE point_id = ANY($1::uuid[])""",
            [current, older, missing],
        )
        await shared_redis.set(cache.redis_key(ns, current), cache.encode(state(current, 2, "held")), px=1000)
        await shared_redis.set(cache.redis_key(ns, older), cache.encode(state(older, 1, "old")), px=60_000)

        written = await cache.keep_filled(pool, shared_redis, namespace=ns, ttl_s=60)

        assert written == 2, "the older and the missing entry are written, the current one is not"
        held = cache.decode(await shared_redis.get(cache.redis_key(ns, current)))
        assert held.note == "held" and await shared_redis.pttl(cache.redis_key(ns, current)) > 1000
        for point_id in (older, missing):
            entry = cache.decode(await shared_redis.get(cache.redis_key(ns, point_id)))
            assert (entry.version, entry.note) == (2, None)
    finally:
        await pool.close()
        await shared_redis.delete(*(cache.redis_key(ns, p) for p in (current, older, missing)))
