"""Inbox rows are pruned once past the retention, per consumer, in bounded batches; recent ones stay."""

import asyncpg

from poi_shared import inbox

DAY_S = 24 * 3600.0


async def add_rows(pool: asyncpg.Pool, consumer: str, prefix: str, count: int, days_ago: float) -> None:
    await pool.executemany(
        "INSERT INTO inbox (consumer, event_id, handled_at) VALUES ($1, $2, now() - make_interval(secs => $3))",
        [(consumer, f"{prefix}-{i}", days_ago * DAY_S) for i in range(count)],
    )


async def test_prune_removes_only_the_consumers_rows_past_the_retention(shared_db: asyncpg.Pool) -> None:
    await add_rows(shared_db, "notify-status", "old", 7, days_ago=8)
    await add_rows(shared_db, "notify-status", "recent", 3, days_ago=6)
    await add_rows(shared_db, "other-consumer", "old", 2, days_ago=30)

    removed = await inbox.prune(shared_db, consumer="notify-status", older_than_s=7 * DAY_S, batch=3)

    assert removed == 7
    left = await shared_db.fetch("SELECT consumer, event_id FROM inbox ORDER BY consumer, event_id")
    assert [(r["consumer"], r["event_id"]) for r in left] == [
        ("notify-status", "recent-0"),
        ("notify-status", "recent-1"),
        ("notify-status", "recent-2"),
        ("other-consumer", "old-0"),
        ("other-consumer", "old-1"),
    ]
    # A pruned event is no longer remembered; a kept one still is.
    async with shared_db.acquire() as conn:
        assert await inbox.claim(conn, consumer="notify-status", event_id="old-0")
        assert not await inbox.claim(conn, consumer="notify-status", event_id="recent-0")


async def test_prune_finds_old_rows_through_an_index(shared_db: asyncpg.Pool) -> None:
    await add_rows(shared_db, "notify-status", "recent", 5000, days_ago=1)
    await add_rows(shared_db, "notify-status", "old", 20, days_ago=8)
    async with shared_db.acquire() as conn:
        await conn.execute("ANALYZE inbox")
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                """EXPLAIN SELECT event_id FROM inbox
                   WHERE consumer = 'notify-status' AND handled_at < now() - interval '7 days' LIMIT 5000"""
            )
        )
    assert "inbox_consumer_handled_at" in plan, plan
