"""Pooled connections are given back without a reset round trip, except those that took session state."""

import asyncpg

from poi_shared import db

LOCK_KEY = 0x0B0FF


async def test_a_connection_marked_as_holding_session_state_is_reset_on_release(shared_db: asyncpg.Pool) -> None:
    async with db.connection(shared_db) as conn:
        db.holds_session_state(conn)
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY)
        await conn.execute("SET application_name = 'marked'")
        pid = conn.get_server_pid()

    # Given back, it holds no lock and no setting any more: another session takes the lock.
    assert (
        await shared_db.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND pid = $2", LOCK_KEY, pid
        )
        == 0
    )
    for _ in range(3):  # whichever pooled connection answers
        async with db.connection(shared_db) as conn:
            if conn.get_server_pid() == pid:
                assert await conn.fetchval("SHOW application_name") != "marked"


async def test_a_transaction_left_open_is_rolled_back_on_release(shared_db: asyncpg.Pool) -> None:
    await shared_db.execute("CREATE TABLE IF NOT EXISTS reset_probe (n int)")
    async with db.connection(shared_db) as conn:
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO reset_probe VALUES (1)")
    assert await shared_db.fetchval("SELECT count(*) FROM reset_probe") == 0
