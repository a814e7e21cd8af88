"""Every SQL statement of the notify service."""

from datetime import datetime
from uuid import UUID

import asyncpg

from poi_shared import db


async def insert_observation(
    conn: asyncpg.Connection,
    *,
    event_id: str,
    point_id: UUID,
    version: int,
    state: str,
    reported_at: datetime,
) -> None:
    """Record one status event."""
    await conn.execute(
        """INSERT INTO status_observations (event_id, point_id, version, state, reported_at)
           VALUES ($1, $2, $3, $4, $5)""",
        event_id,
        point_id,
        version,
        state,
        reported_at,
    )


async def list_observations(
    pool: asyncpg.Pool, *, point_id: UUID, after_version: int, limit: int
) -> list[asyncpg.Record]:
    """A point's observations in version order, one page."""
    async with db.connection(pool) as conn:
        return await conn.fetch(
            """SELECT event_id, point_id, version, state, reported_at, observed_at FROM status_observations
               WHERE point_id = $1 AND version > $2 ORDER BY version, event_id LIMIT $3""",
            point_id,
            after_version,
            limit,
        )


# --- SMS: numbers and the message outbox ---


async def phone_for_sending(conn: asyncpg.Connection, phone_hash: str) -> asyncpg.Record | None:
    """What decides whether a number may get a message, locked until the caller's transaction ends."""
    return await conn.fetchrow(
        "SELECT latin, confirmed_at, stopped_at, is_contact FROM phones WHERE phone_hash = $1 FOR SHARE",
        phone_hash,
    )


async def insert_sms(
    conn: asyncpg.Connection,
    *,
    id: UUID,
    dedup_key: str,
    phone_hash: str,
    kind: str,
    body: str,
    parts: int,
    not_before: datetime | None,
) -> UUID | None:
    """Queue a message unless its dedup key was queued before; the new id, or None."""
    return await conn.fetchval(
        """INSERT INTO sms_messages (id, dedup_key, phone_hash, kind, body, parts, not_before)
           VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, now()))
           ON CONFLICT (dedup_key) DO NOTHING RETURNING id""",
        id,
        dedup_key,
        phone_hash,
        kind,
        body,
        parts,
        not_before,
    )


# --- SMS: subscriptions, confirmation codes, the sender, delivery reports, inbound keywords ---


async def ensure_phone(conn: asyncpg.Connection, *, phone_hash: str, e164: str, language: str, latin: bool) -> None:
    """Add the number if it is new; an existing number keeps its settings until it confirms a change."""
    await conn.execute(
        """INSERT INTO phones (phone_hash, e164, language, latin) VALUES ($1, $2, $3, $4)
           ON CONFLICT (phone_hash) DO NOTHING""",
        phone_hash,
        e164,
        language,
        latin,
    )


async def phone(conn: asyncpg.Connection, phone_hash: str) -> asyncpg.Record | None:
    """A number's settings and opt-in state, locked until the caller's transaction ends."""
    return await conn.fetchrow(
        """SELECT phone_hash, e164, language, latin, confirmed_at, stopped_at FROM phones
           WHERE phone_hash = $1 FOR UPDATE""",
        phone_hash,
    )


async def count_subscriptions(conn: asyncpg.Connection, phone_hash: str) -> int:
    """A number's subscriptions, confirmed or waiting."""
    return await conn.fetchval(
        """SELECT (SELECT count(*) FROM subscriptions WHERE phone_hash = $1)
                + (SELECT count(*) FROM pending_subscriptions WHERE phone_hash = $1 AND expires_at > now())""",
        phone_hash,
    )


async def insert_pending_subscription(
    conn: asyncpg.Connection,
    *,
    id: UUID,
    phone_hash: str,
    language: str,
    latin: bool,
    kind: str,
    point_id: UUID | None,
    lat: float | None,
    lon: float | None,
    radius_m: int | None,
    cells: list[int],
    services: list[str],
    ttl_s: int,
) -> None:
    """A subscription waiting for its number to confirm."""
    await conn.execute(
        """INSERT INTO pending_subscriptions
               (id, phone_hash, language, latin, kind, point_id, lat, lon, radius_m, cells, services, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now() + make_interval(secs => $12))""",
        id,
        phone_hash,
        language,
        latin,
        kind,
        point_id,
        lat,
        lon,
        radius_m,
        cells,
        services,
        float(ttl_s),
    )


async def replace_code(conn: asyncpg.Connection, *, phone_hash: str, purpose: str, code_hash: str, ttl_s: int) -> None:
    """The number's one live code, replacing any earlier one."""
    await conn.execute(
        """INSERT INTO confirmation_codes (phone_hash, purpose, code_hash, expires_at)
           VALUES ($1, $2, $3, now() + make_interval(secs => $4))
           ON CONFLICT (phone_hash) DO UPDATE SET purpose = excluded.purpose, code_hash = excluded.code_hash,
               attempts = 0, created_at = now(), expires_at = excluded.expires_at""",
        phone_hash,
        purpose,
        code_hash,
        float(ttl_s),
    )


async def live_code(conn: asyncpg.Connection, phone_hash: str) -> asyncpg.Record | None:
    """The number's unexpired code, locked while it is checked."""
    return await conn.fetchrow(
        """SELECT purpose, code_hash, attempts FROM confirmation_codes
           WHERE phone_hash = $1 AND expires_at > now() FOR UPDATE""",
        phone_hash,
    )


async def count_wrong_code(conn: asyncpg.Connection, phone_hash: str, *, max_attempts: int) -> int:
    """Count a wrong try; the code is burnt at max_attempts. How many tries are left."""
    attempts = await conn.fetchval(
        "UPDATE confirmation_codes SET attempts = attempts + 1 WHERE phone_hash = $1 RETURNING attempts", phone_hash
    )
    if attempts >= max_attempts:
        await delete_code(conn, phone_hash)
    return max(max_attempts - attempts, 0)


async def delete_code(conn: asyncpg.Connection, phone_hash: str) -> None:
    """Forget the number's code (used, or burnt)."""
    await conn.execute("DELETE FROM confirmation_codes WHERE phone_hash = $1", phone_hash)


async def confirm_pending(conn: asyncpg.Connection, phone_hash: str) -> int:
    """Confirm the number with its latest pending settings and move its live pending subscriptions; how many."""
    await conn.execute(
        """UPDATE phones p SET confirmed_at = coalesce(p.confirmed_at, now()), language = s.language, latin = s.latin
           FROM (SELECT language, latin FROM pending_subscriptions WHERE phone_hash = $1 AND expires_at > now()
                 ORDER BY created_at DESC LIMIT 1) s
           WHERE p.phone_hash = $1""",
        phone_hash,
    )
    moved = await conn.fetch(
        """WITH live AS (
               DELETE FROM pending_subscriptions WHERE phone_hash = $1 RETURNING *
           )
           INSERT INTO subscriptions (id, phone_hash, kind, point_id, lat, lon, radius_m, cells, services, created_at)
           SELECT id, phone_hash, kind, point_id, lat, lon, radius_m, cells, services, created_at FROM live
           WHERE expires_at > now()
           ON CONFLICT DO NOTHING RETURNING id""",
        phone_hash,
    )
    return len(moved)


async def delete_subscriptions(conn: asyncpg.Connection, phone_hash: str) -> int:
    """Remove every subscription of the number, confirmed or waiting; how many were confirmed."""
    await conn.execute("DELETE FROM pending_subscriptions WHERE phone_hash = $1", phone_hash)
    return len(await conn.fetch("DELETE FROM subscriptions WHERE phone_hash = $1 RETURNING id", phone_hash))


async def subscription_state(pool: asyncpg.Pool, id: UUID) -> asyncpg.Record | None:
    """A subscription, confirmed or waiting, with its number's state."""
    async with db.connection(pool) as conn:
        return await conn.fetchrow(
            """SELECT s.id, s.state, s.kind, s.point_id, s.lat, s.lon, s.radius_m, s.services, s.created_at,
                      p.e164, p.language, p.latin, p.stopped_at
               FROM (SELECT id, 'active' AS state, phone_hash, kind, point_id, lat, lon, radius_m, services, created_at
                     FROM subscriptions WHERE id = $1
                     UNION ALL
                     SELECT id, 'pending', phone_hash, kind, point_id, lat, lon, radius_m, services, created_at
                     FROM pending_subscriptions WHERE id = $1 AND expires_at > now()) s
               JOIN phones p USING (phone_hash)""",
            id,
        )


async def forget_expired_pending(pool: asyncpg.Pool) -> int:
    """Drop unconfirmed subscriptions and codes past their time; how many subscriptions."""
    async with db.connection(pool) as conn:
        await conn.execute("DELETE FROM confirmation_codes WHERE expires_at <= now()")
        return len(await conn.fetch("DELETE FROM pending_subscriptions WHERE expires_at <= now() RETURNING id"))


async def cancel_queued(conn: asyncpg.Connection, phone_hash: str) -> None:
    """Cancel every message waiting for the number (STOP)."""
    await conn.execute(
        """UPDATE sms_messages SET state = 'cancelled', last_error = 'STOP'
           WHERE phone_hash = $1 AND state = 'queued'""",
        phone_hash,
    )


async def stop_phone(conn: asyncpg.Connection, phone_hash: str) -> None:
    """STOP: nothing queued after this moment is sent (enqueue refuses, the sender cancels what is older)."""
    await conn.execute("UPDATE phones SET stopped_at = now() WHERE phone_hash = $1", phone_hash)


async def start_phone(conn: asyncpg.Connection, phone_hash: str) -> bool:
    """START: the number gets messages again; False if it had not stopped."""
    return bool(
        await conn.fetchval(
            "UPDATE phones SET stopped_at = NULL WHERE phone_hash = $1 AND stopped_at IS NOT NULL RETURNING true",
            phone_hash,
        )
    )


async def claim_due_sms(pool: asyncpg.Pool, *, claimer: UUID, limit: int) -> list[asyncpg.Record]:
    """Take up to limit due messages for this process (state 'sending'), committed before anything is sent."""
    async with db.connection(pool) as conn:
        return await conn.fetch(
            """WITH due AS (
                   SELECT id FROM sms_messages WHERE state = 'queued' AND not_before <= now()
                   ORDER BY not_before LIMIT $2 FOR UPDATE SKIP LOCKED
               )
               UPDATE sms_messages m SET state = 'sending', claimed_by = $1, claimed_at = now(),
                   attempts = m.attempts + 1
               FROM due, phones p
               WHERE m.id = due.id AND p.phone_hash = m.phone_hash
               RETURNING m.id, m.phone_hash, m.kind, m.body, m.attempts, m.created_at, p.e164""",
            claimer,
            limit,
        )


async def cancel_stopped(pool: asyncpg.Pool, *, claimer: UUID, ids: list[UUID]) -> set[UUID]:
    """Cancel the claimed messages whose number sent STOP after they were queued; their ids."""
    async with db.connection(pool) as conn:
        rows = await conn.fetch(
            """UPDATE sms_messages m SET state = 'cancelled', last_error = 'STOP'
               FROM phones p
               WHERE m.id = ANY($2) AND m.claimed_by = $1 AND m.state = 'sending'
                 AND p.phone_hash = m.phone_hash AND p.stopped_at IS NOT NULL AND m.created_at < p.stopped_at
               RETURNING m.id""",
            claimer,
            ids,
        )
    return {r["id"] for r in rows}


async def mark_sent(pool: asyncpg.Pool, *, claimer: UUID, sent: list[tuple[UUID, str]]) -> None:
    """Record what the gateway accepted (a delivery report may have come first: its state stays)."""
    async with db.connection(pool) as conn:
        await conn.execute(
            """UPDATE sms_messages m SET state = CASE WHEN m.state = 'sending' THEN 'sent' ELSE m.state END,
                   sent_at = now(), provider_id = s.provider_id
               FROM unnest($2::uuid[], $3::text[]) AS s(id, provider_id)
               WHERE m.id = s.id AND m.claimed_by = $1""",
            claimer,
            [id for id, _ in sent],
            [provider_id for _, provider_id in sent],
        )


async def mark_failed(pool: asyncpg.Pool, *, claimer: UUID, failed: list[tuple[UUID, str]]) -> None:
    """Record messages the gateway refused for good."""
    async with db.connection(pool) as conn:
        await conn.execute(
            """UPDATE sms_messages m SET state = 'failed', last_error = f.error
               FROM unnest($2::uuid[], $3::text[]) AS f(id, error)
               WHERE m.id = f.id AND m.claimed_by = $1 AND m.state = 'sending'""",
            claimer,
            [id for id, _ in failed],
            [error for _, error in failed],
        )


async def requeue(
    pool: asyncpg.Pool, *, claimer: UUID, retries: list[tuple[UUID, str, float]], max_attempts: int
) -> None:
    """Put messages the gateway could not take back in the queue after their backoff; failed past max_attempts."""
    async with db.connection(pool) as conn:
        await conn.execute(
            """UPDATE sms_messages m
               SET state = CASE WHEN m.attempts >= $5 THEN 'failed' ELSE 'queued' END,
                   not_before = now() + make_interval(secs => r.delay_s), last_error = r.error, claimed_by = NULL
               FROM unnest($2::uuid[], $3::text[], $4::float8[]) AS r(id, error, delay_s)
               WHERE m.id = r.id AND m.claimed_by = $1 AND m.state = 'sending'""",
            claimer,
            [id for id, _, _ in retries],
            [error for _, error, _ in retries],
            [delay for _, _, delay in retries],
            max_attempts,
        )


async def abandon_stale_sending(pool: asyncpg.Pool, *, older_than_s: float) -> int:
    """Messages claimed by a process that died mid-send become 'unknown': never sent twice. How many."""
    async with db.connection(pool) as conn:
        rows = await conn.fetch(
            """UPDATE sms_messages SET state = 'unknown', last_error = 'the sender stopped while sending'
               WHERE state = 'sending' AND claimed_at < now() - make_interval(secs => $1) RETURNING id""",
            older_than_s,
        )
    return len(rows)


async def abandon_own_sending(pool: asyncpg.Pool, *, claimer: UUID) -> int:
    """On shutdown: this process's messages still in 'sending' become 'unknown' (their fate is not known)."""
    async with db.connection(pool) as conn:
        rows = await conn.fetch(
            """UPDATE sms_messages SET state = 'unknown', last_error = 'the sender stopped while sending'
               WHERE state = 'sending' AND claimed_by = $1 RETURNING id""",
            claimer,
        )
    return len(rows)


async def record_delivery_report(pool: asyncpg.Pool, *, id: UUID, dlr_type: int, final_state: str | None) -> bool:
    """Record the gateway's report about a message; a final one (delivered, failed) sets its state. Known id?"""
    async with db.connection(pool) as conn:
        return bool(
            await conn.fetchval(
                # Reports come in any order: a late 'accepted by the SMSC' (8) never hides 'delivered' (1).
                """UPDATE sms_messages SET dlr_at = now(),
                       dlr_type = CASE WHEN $3::text IS NULL AND dlr_type IN (1, 2, 16) THEN dlr_type ELSE $2 END,
                       state = CASE WHEN $3::text IS NOT NULL AND state IN ('sending', 'sent', 'unknown', 'delivered')
                                    THEN $3::text ELSE state END,
                       delivered_at = CASE WHEN $3::text = 'delivered' THEN now() ELSE delivered_at END
                   WHERE id = $1 RETURNING true""",
                id,
                dlr_type,
                final_state,
            )
        )


async def sms_of_phone(pool: asyncpg.Pool, phone_hash: str) -> list[asyncpg.Record]:
    """A number's messages, oldest first (tests and support)."""
    async with db.connection(pool) as conn:
        return await conn.fetch(
            """SELECT id, kind, body, state, attempts, last_error, provider_id, dlr_type, created_at, sent_at
               FROM sms_messages WHERE phone_hash = $1 ORDER BY created_at, id""",
            phone_hash,
        )
