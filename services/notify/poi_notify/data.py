"""Every SQL statement of the notify service."""

from collections.abc import AsyncIterator, Sequence
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


async def insert_observations(
    conn: asyncpg.Connection, observations: Sequence[tuple[str, UUID, int, str, datetime]]
) -> None:
    """Record many status events, each as (event id, point, version, state, reported_at), in one statement."""
    await conn.execute(
        """INSERT INTO status_observations (event_id, point_id, version, state, reported_at)
           SELECT * FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::text[], $5::timestamptz[])""",
        [o[0] for o in observations],
        [o[1] for o in observations],
        [o[2] for o in observations],
        [o[3] for o in observations],
        [o[4] for o in observations],
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
        """SELECT latin, stopped_at IS NOT NULL AS stopped, confirmed_at IS NOT NULL AS confirmed, is_contact
           FROM phones WHERE phone_hash = $1 FOR SHARE""",
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
    traceparent: str | None = None,
) -> UUID | None:
    """Queue a message unless its dedup key was queued before; the new id, or None."""
    return await conn.fetchval(
        """INSERT INTO sms_messages (id, dedup_key, phone_hash, kind, body, parts, not_before, traceparent)
           VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, now()), $8)
           ON CONFLICT (phone_hash, dedup_key) DO NOTHING RETURNING id""",
        id,
        dedup_key,
        phone_hash,
        kind,
        body,
        parts,
        not_before,
        traceparent,
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
    # Removed area subscriptions are recorded so every replica's in-memory index drops them (alerts.areas).
    return int(
        await conn.fetchval(
            """WITH gone AS (DELETE FROM subscriptions WHERE phone_hash = $1 RETURNING id, kind),
                    recorded AS (INSERT INTO subscription_removals (id) SELECT id FROM gone WHERE kind = 'area')
               SELECT count(*) FROM gone""",
            phone_hash,
        )
    )


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
    """Take up to limit due messages for this process (state 'sending'), committed before anything is sent.

    In the same statement, those whose number sent STOP after they were queued are cancelled (state 'cancelled'):
    nothing stands between the claim and the sending that could fail and leave claimed messages unsent.
    """
    async with db.connection(pool) as conn:
        return await conn.fetch(
            """WITH due AS (
                   SELECT id FROM sms_messages WHERE state = 'queued' AND not_before <= now()
                   ORDER BY not_before LIMIT $2 FOR UPDATE SKIP LOCKED
               )
               UPDATE sms_messages m SET claimed_by = $1, claimed_at = now(),
                   state = CASE WHEN p.stopped_at > m.created_at THEN 'cancelled' ELSE 'sending' END,
                   last_error = CASE WHEN p.stopped_at > m.created_at THEN 'STOP' ELSE m.last_error END,
                   attempts = CASE WHEN p.stopped_at > m.created_at THEN m.attempts ELSE m.attempts + 1 END
               FROM due, phones p
               WHERE m.id = due.id AND p.phone_hash = m.phone_hash
               RETURNING m.id, m.phone_hash, m.kind, m.body, m.attempts, m.created_at, m.state, m.traceparent,
                   p.e164""",
            claimer,
            limit,
        )


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


async def record_delivery_reports(
    pool: asyncpg.Pool,
    *,
    ids: list[UUID],
    dlr_types: list[int],
    final_states: list[str | None],
    ats: list[datetime],
) -> int:
    """Record the gateway's reports (one a message); a final one (delivered, failed) sets its state. How many known."""
    async with db.connection(pool) as conn:
        status = await conn.execute(
            # Reports come in any order: a late 'accepted by the SMSC' (8) never hides 'delivered' (1).
            """UPDATE sms_messages m SET dlr_at = r.at,
                   dlr_type = CASE WHEN r.final_state IS NULL AND m.dlr_type IN (1, 2, 16) THEN m.dlr_type
                                   ELSE r.dlr_type END,
                   state = CASE WHEN r.final_state IS NOT NULL
                                     AND m.state IN ('sending', 'sent', 'unknown', 'delivered')
                                THEN r.final_state ELSE m.state END,
                   delivered_at = CASE WHEN r.final_state = 'delivered' THEN r.at ELSE m.delivered_at END
               FROM unnest($1::uuid[], $2::int[], $3::text[], $4::timestamptz[]) AS r(id, dlr_type, final_state, at)
               WHERE m.id = r.id""",
            ids,
            dlr_types,
            final_states,
            ats,
        )
    return int(status.split()[-1])


async def sms_of_phone(pool: asyncpg.Pool, phone_hash: str) -> list[asyncpg.Record]:
    """A number's messages, oldest first (tests and support)."""
    async with db.connection(pool) as conn:
        return await conn.fetch(
            """SELECT id, kind, body, state, attempts, last_error, provider_id, dlr_type, created_at, sent_at
               FROM sms_messages WHERE phone_hash = $1 ORDER BY created_at, id""",
            phone_hash,
        )


# --- Alerts: points as the registry announced them, status changes, windows and their changes ---


async def point_is_public(conn: asyncpg.Connection, point_id: UUID) -> bool:
    """Whether notify knows the point as one the public may be told of (registered, not retired, not hidden)."""
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM alert_points
                              WHERE id = $1 AND known AND NOT retired AND visibility <> 'hidden')""",
            point_id,
        )
    )


async def upsert_alert_point(
    conn: asyncpg.Connection,
    *,
    point_id: UUID,
    version: int,
    code: str,
    name_uk: str | None,
    name_en: str | None,
    address_uk: str | None,
    address_en: str | None,
    settlement: str | None,
    lat: float | None,
    lon: float | None,
    cell: int | None,
    services: list[str],
    katotth: str,
    visibility: str,
    retired: bool,
) -> None:
    """Keep a point's public details; an older or repeated version changes nothing."""
    await conn.execute(
        """INSERT INTO alert_points (id, known, version, code, name_uk, name_en, address_uk, address_en, settlement,
                                     lat, lon, cell, services, katotth, visibility, retired)
           VALUES ($1, true, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
           ON CONFLICT (id) DO UPDATE SET known = true, version = EXCLUDED.version, code = EXCLUDED.code,
               name_uk = EXCLUDED.name_uk, name_en = EXCLUDED.name_en, address_uk = EXCLUDED.address_uk,
               address_en = EXCLUDED.address_en, settlement = EXCLUDED.settlement, lat = EXCLUDED.lat,
               lon = EXCLUDED.lon, cell = EXCLUDED.cell, services = EXCLUDED.services, katotth = EXCLUDED.katotth,
               visibility = EXCLUDED.visibility, retired = EXCLUDED.retired
           WHERE alert_points.version < EXCLUDED.version""",
        point_id,
        version,
        code,
        name_uk,
        name_en,
        address_uk,
        address_en,
        settlement,
        lat,
        lon,
        cell,
        services,
        katotth,
        visibility,
        retired,
    )


async def lock_point_status(conn: asyncpg.Connection, point_id: UUID) -> asyncpg.Record:
    """The point's current state and status version, locked until the transaction ends (a new point: unknown, 0)."""
    current = await conn.fetchrow("SELECT state, status_version FROM alert_points WHERE id = $1 FOR UPDATE", point_id)
    if current is None:
        # A status before the point's first registry event: a row without a place holds its state meanwhile.
        await conn.execute("INSERT INTO alert_points (id) VALUES ($1) ON CONFLICT DO NOTHING", point_id)
        current = await conn.fetchrow(
            "SELECT state, status_version FROM alert_points WHERE id = $1 FOR UPDATE", point_id
        )
    assert current is not None
    return current


async def record_point_status(
    conn: asyncpg.Connection,
    *,
    point_id: UUID,
    status_version: int,
    state: str,
    changed_at: datetime,
    changes: list[str],
    urgent: list[bool],
    fuel_hours: list[float | None],
    traceparent: str | None,
) -> None:
    """Make a newer status the point's current one, and leave its changes for the planner, in one statement."""
    await conn.execute(
        """WITH current AS (
               UPDATE alert_points SET state = $2, status_version = $3, state_changed_at = $4
               WHERE id = $1 AND status_version < $3
           )
           INSERT INTO alert_queue (point_id, status_version, change, urgent, fuel_hours, traceparent)
           SELECT $1, $3, change, urgent, fuel_hours, $8
           FROM unnest($5::text[], $6::bool[], $7::real[]) AS c(change, urgent, fuel_hours)""",
        point_id,
        state,
        status_version,
        changed_at,
        changes,
        urgent,
        fuel_hours,
        traceparent,
    )


# --- Alerts: the in-memory area index's view of subscriptions (alerts.areas) ---


async def oldest_running_txid(conn: asyncpg.Connection) -> int:
    """The oldest transaction still running now: everything older has committed or rolled back."""
    return int(await conn.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))


async def area_subscriptions_since(
    conn: asyncpg.Connection, txid: int, *, chunk: int = 50_000
) -> AsyncIterator[list[asyncpg.Record]]:
    """The area subscriptions written by transactions not older than txid (all of them for 0), chunk by chunk."""
    # A cursor: a million rows at once would hold them all in memory as records, several times the index's size.
    async with conn.transaction():
        cursor = await conn.cursor(
            """SELECT id, phone_hash, lat, lon, radius_m, services, created_at FROM subscriptions
               WHERE kind = 'area' AND txid >= $1::text::xid8""",
            str(txid),
        )
        while rows := await cursor.fetch(chunk):
            yield rows


async def area_removals_since(conn: asyncpg.Connection, txid: int) -> list[UUID]:
    """The area subscriptions removed by transactions not older than txid."""
    rows = await conn.fetch("SELECT id FROM subscription_removals WHERE txid >= $1::text::xid8", str(txid))
    return [r["id"] for r in rows]


async def prune_removals(pool: asyncpg.Pool, *, older_than_s: float) -> int:
    """Forget removals every replica has long seen (one that has not looked for that long loads everything)."""
    async with db.connection(pool) as conn:
        rows = await conn.fetch(
            "DELETE FROM subscription_removals WHERE removed_at < now() - $1 * interval '1 second' RETURNING 1",
            older_than_s,
        )
        return len(rows)


# --- Alerts: planning ---


async def lock_alert_batch(conn: asyncpg.Connection, *, batch: int) -> list[asyncpg.Record]:
    """The oldest queued changes no other planner holds, locked, with their points' public place."""
    return await conn.fetch(
        """SELECT q.id, q.point_id, q.status_version, q.change, q.urgent, q.queued_at,
                  CASE WHEN q.change IN ('stale', 'low_fuel') THEN 'ops' ELSE 'alert' END AS channel,
                  coalesce(p.known AND NOT p.retired AND p.visibility <> 'hidden', false) AS public,
                  p.lat, p.lon, p.cell, p.services
           FROM alert_queue q LEFT JOIN alert_points p ON p.id = q.point_id
           ORDER BY q.id LIMIT $1 FOR UPDATE OF q SKIP LOCKED""",
        batch,
    )


PLAN_ALERTS = """
WITH batch AS (
    DELETE FROM alert_queue WHERE id = ANY($1::bigint[])
    RETURNING point_id, status_version, change, urgent, fuel_hours, traceparent, queued_at,
              CASE WHEN change IN ('stale', 'low_fuel') THEN 'ops' ELSE 'alert' END AS channel
),
changes AS (
    -- The latest change of each point per channel in this batch, with the point's public details.
    SELECT DISTINCT ON (b.point_id, b.channel) b.*, p.katotth
    FROM batch b JOIN alert_points p ON p.id = b.point_id
    WHERE p.id = ANY(ARRAY(SELECT point_id FROM batch)) AND p.known AND NOT p.retired
      AND (b.channel = 'ops' OR p.visibility <> 'hidden')
    ORDER BY b.point_id, b.channel, b.status_version DESC
),
point_hits AS (
    -- A change that came before the subscription is no news to it (the subscriber saw that state when they
    -- subscribed), however late the planner runs.
    SELECT s.phone_hash, c.point_id, c.change, c.status_version, c.urgent, c.traceparent
    FROM changes c JOIN subscriptions s ON s.kind = 'point' AND s.point_id = c.point_id
    WHERE c.channel = 'alert' AND s.point_id = ANY(ARRAY(SELECT point_id FROM changes))
      AND s.created_at <= c.queued_at
),
area_hits AS (
    -- The phones whose area subscriptions hold a point of the batch that opened (found in memory, alerts.areas),
    -- with whether that news is urgent. Only whether a phone needs a window is decided here (which open points its
    -- message names is decided when it is sent), so a phone whose window is already waiting is left alone, unless
    -- this brings urgent news to a window held back by quiet hours, or area news to a window that had only a
    -- followed point's.
    SELECT h.phone_hash, h.urgent, h.at
    FROM unnest($6::text[], $7::bool[]) WITH ORDINALITY AS h(phone_hash, urgent, at)
    WHERE NOT EXISTS (
        SELECT 1 FROM alert_windows w
        WHERE w.phone_hash = h.phone_hash AND w.channel = 'alert' AND w.flushed_at IS NULL AND w.area
          AND (w.urgent OR NOT h.urgent))
),
ops_hits AS (
    SELECT k.phone_hash, c.point_id, c.change, c.status_version, c.urgent, c.fuel_hours, c.traceparent
    FROM changes c JOIN alert_contacts k ON starts_with(c.katotth, k.katotth_prefix)
    WHERE c.channel = 'ops'
),
point_news AS (
    -- One row per phone, channel and point (few: followed points and coordinator contacts).
    SELECT DISTINCT ON (phone_hash, channel, point_id) * FROM (
        SELECT phone_hash, 'alert' AS channel, point_id, change, status_version, urgent, NULL::real AS fuel_hours,
               traceparent
        FROM point_hits
        UNION ALL
        SELECT phone_hash, 'ops', point_id, change, status_version, urgent, fuel_hours, traceparent FROM ops_hits
    ) news
    ORDER BY phone_hash, channel, point_id
),
hits AS (
    -- Area news is one row per phone with no point (area_hits has each phone once already, and is by far the
    -- largest: it is not sorted again).
    SELECT * FROM point_news
    UNION ALL
    SELECT phone_hash, 'alert', NULL, NULL, NULL, urgent, NULL, NULL FROM area_hits
),
windows AS (
    -- The phone's current window takes the news; once its message went, the next window starts no earlier than
    -- a window's length after it. Non-urgent news in quiet hours waits for their end ($4), urgent news does not.
    INSERT INTO alert_windows AS w (phone_hash, channel, window_start, flush_at, urgent, area)
    SELECT phone_hash, channel, $2::timestamptz,
           CASE WHEN urgent OR $4::timestamptz IS NULL THEN $2 + $3 * interval '1 second'
                ELSE greatest($2 + $3 * interval '1 second', $4) END,
           urgent, area
    FROM (
        -- The phones with news of single points (few), with any area news of theirs: one row per channel.
        SELECT phone_hash, channel, bool_or(urgent) AS urgent, bool_or(point_id IS NULL) AS area
        FROM hits WHERE phone_hash IN (SELECT phone_hash FROM point_news)
        GROUP BY phone_hash, channel
        UNION ALL
        -- Area news alone (most phones): one row per phone already.
        SELECT phone_hash, 'alert', urgent, true FROM area_hits a
        WHERE NOT EXISTS (SELECT 1 FROM point_news p WHERE p.phone_hash = a.phone_hash)
    ) news
    -- In key order: each index page is visited once per batch, not once per phone (indexes outgrow memory).
    ORDER BY phone_hash, channel
    ON CONFLICT (phone_hash, channel) DO UPDATE SET
        window_start = CASE WHEN w.flushed_at IS NULL THEN w.window_start
                            ELSE greatest(EXCLUDED.window_start, w.flushed_at + $5 * interval '1 second') END,
        flush_at = CASE WHEN w.flushed_at IS NULL THEN least(w.flush_at, greatest(EXCLUDED.flush_at, w.window_start))
                        ELSE greatest(EXCLUDED.flush_at, w.flushed_at + $5 * interval '1 second') END,
        urgent = (w.flushed_at IS NULL AND w.urgent) OR EXCLUDED.urgent,
        area = (w.flushed_at IS NULL AND w.area) OR EXCLUDED.area,
        flushed_at = NULL
    RETURNING phone_hash, channel, window_start, flush_at, urgent, area
),
recorded AS (
    INSERT INTO alert_changes AS a (phone_hash, channel, window_start, point_id, change, status_version,
                                    fuel_hours, traceparent)
    SELECT h.phone_hash, h.channel, w.window_start, h.point_id, h.change, h.status_version, h.fuel_hours,
           h.traceparent
    FROM point_news h JOIN windows w USING (phone_hash, channel)
    ON CONFLICT (phone_hash, channel, window_start, point_id) DO UPDATE SET
        change = EXCLUDED.change, status_version = EXCLUDED.status_version, fuel_hours = EXCLUDED.fuel_hours,
        traceparent = EXCLUDED.traceparent
    WHERE a.status_version <= EXCLUDED.status_version
    RETURNING 1
)
SELECT (SELECT count(*) FROM batch) AS changes, (SELECT count(*) FROM windows) AS windows,
       (SELECT count(*) FROM recorded) AS recorded, a.*
-- The urgent area windows written for the phones sent, for the replica's memory of them (AreaIndex.planned): each
-- phone's position in $6, and the window's flush time in seconds since the epoch.
FROM (SELECT array_agg(h.at) AS urgent_area_at,
             array_agg(extract(epoch FROM w.flush_at)::float8) AS urgent_area_flush_at
      FROM windows w JOIN area_hits h USING (phone_hash)
      WHERE w.channel = 'alert' AND w.area AND w.urgent) a
"""


async def alert_queue_waiting(conn: asyncpg.Connection) -> bool:
    """Whether any change waits for the planner (the planning statement is not cheap even for none)."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM alert_queue)"))


async def plan_alerts(
    conn: asyncpg.Connection,
    *,
    ids: list[int],
    now: datetime,
    gather_s: float,
    quiet_until: datetime | None,
    window_s: float,
    area_phones: list[str],
    area_urgent: list[bool],
) -> asyncpg.Record:
    """Plan locked queued changes (and the area news found for them) into the phones' windows, in one statement."""
    # The CTEs' row counts are unknown to the planner, which would then loop over the batch's points. Hash joins
    # read each row once; every table access above is an index lookup by a whole array (ANY), not a nested loop.
    await conn.execute("SET LOCAL enable_nestloop = off")
    await tune_for_bulk(conn)
    row = await conn.fetchrow(PLAN_ALERTS, ids, now, gather_s, quiet_until, window_s, area_phones, area_urgent)
    assert row is not None
    return row


async def tune_for_bulk(conn: asyncpg.Connection, *, phone_range: bool = False) -> None:
    """Settings for the transaction's statements over many thousands of rows.

    phone_range: every statement reads a range of phones, which reading each table by its key there beats.
    """
    # No JIT: it compiles for most of a second whenever costs look high (enable_nestloop = off makes them look
    # huge), for statements that run in milliseconds. Memory enough that sorting and grouping phones never spills to
    # disk: at the start of a blackout one batch holds most subscribers (623,716 of the bench's million).
    await conn.execute("SET LOCAL jit = off; SET LOCAL work_mem = '256MB'")
    if phone_range:
        # The planner cannot tell a range of 20,000 keys from 2% of the table scattered at random, and reads
        # the whole table (a million rows) for it.
        await conn.execute("SET LOCAL enable_seqscan = off")


async def due_ranges(conn: asyncpg.Connection, *, now: datetime, batch: int) -> list[tuple[str, str]]:
    """The phones with a window whose message is due, in key order and batch phones at a time: each batch's first
    and last phone."""
    # Most calls find nothing due: the index of due times answers that without reading every waiting window.
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM alert_windows WHERE flushed_at IS NULL AND flush_at <= $1)", now
    ):
        return []
    async with conn.transaction():
        await tune_for_bulk(conn)
        # Only the bounds leave the database: at the start of a blackout most subscribers are due at once.
        row = await conn.fetchrow(
            """SELECT array_agg(phone_hash ORDER BY i) FILTER (WHERE i % $2 = 0) AS firsts,
                      array_agg(phone_hash ORDER BY i) FILTER (WHERE i % $2 = $2 - 1) AS lasts,
                      max(phone_hash) AS last
               FROM (SELECT phone_hash, row_number() OVER (ORDER BY phone_hash) - 1 AS i
                     FROM (SELECT DISTINCT phone_hash FROM alert_windows
                           WHERE flushed_at IS NULL AND flush_at <= $1) due) numbered""",
            now,
            batch,
        )
    assert row is not None
    firsts, lasts = row["firsts"] or [], row["lasts"] or []
    if len(lasts) < len(firsts):
        lasts.append(row["last"])  # the last batch holds fewer
    return list(zip(firsts, lasts, strict=True))


async def due_windows(conn: asyncpg.Connection, *, first: str, last: str, now: datetime) -> asyncpg.Record:
    """The windows due of the phones first to last, locked for this flusher, with their phones: one row of arrays
    (alerts.service.DueWindows' columns), each in the same order; all null if none.

    told: whether the window holds news of single points (alert_changes); most hold only area news.
    """
    row = await conn.fetchrow(
        """WITH due AS (
               SELECT w.phone_hash, w.channel, w.area, p.language, p.latin, p.stopped_at IS NOT NULL AS stopped,
                      p.confirmed_at IS NOT NULL AS confirmed, p.is_contact,
                      EXISTS (SELECT 1 FROM alert_changes c
                              WHERE (c.phone_hash, c.channel, c.window_start)
                                  = (w.phone_hash, w.channel, w.window_start)) AS told
               FROM alert_windows w JOIN phones p USING (phone_hash)
               WHERE w.phone_hash BETWEEN $1 AND $2 AND p.phone_hash BETWEEN $1 AND $2
                 AND w.flushed_at IS NULL AND w.flush_at <= $3
               ORDER BY w.phone_hash, w.channel FOR UPDATE OF w SKIP LOCKED)
           SELECT array_agg(phone_hash) AS phone_hash, array_agg(channel) AS channel, array_agg(area) AS area,
                  array_agg(told) AS told, array_agg(language) AS language, array_agg(latin) AS latin,
                  array_agg(stopped) AS stopped, array_agg(confirmed) AS confirmed, array_agg(is_contact) AS is_contact
           FROM due""",
        first,
        last,
        now,
    )
    assert row is not None
    return row


async def window_changes(
    conn: asyncpg.Connection, *, phone_hashes: list[str], channels: list[str]
) -> list[asyncpg.Record]:
    """What the phones' current windows (locked by the caller) tell of single points, with each point's current
    public details."""
    return await conn.fetch(
        """SELECT c.phone_hash, c.channel, c.point_id, c.change, c.fuel_hours, c.traceparent,
                  p.code, p.name_uk, p.name_en, p.address_uk, p.address_en, p.settlement, p.services, p.state,
                  p.visibility, p.retired
           FROM unnest($1::text[], $2::text[]) AS w(phone_hash, channel)
           JOIN alert_windows a USING (phone_hash, channel)
           JOIN alert_changes c USING (phone_hash, channel, window_start)
           JOIN alert_points p ON p.id = c.point_id
           ORDER BY c.phone_hash, c.channel, c.point_id""",
        phone_hashes,
        channels,
    )


async def open_points(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every point open now that the public may be told of, with what a message says of it."""
    return await conn.fetch(
        """SELECT id AS point_id, version, 'alert' AS channel, 'opened' AS change, NULL::real AS fuel_hours, code,
                  name_uk, name_en, address_uk, address_en, settlement, services, state, visibility, retired, lat, lon,
                  cell
           FROM alert_points
           WHERE state = 'open' AND known AND NOT retired AND visibility <> 'hidden'"""
    )


FLUSH_WINDOWS = """
WITH w AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[]) WITH ORDINALITY
        AS w(phone_hash, channel, text_of, traceparent, n)
),
texts AS (
    SELECT * FROM unnest($5::text[], $6::text[], $7::smallint[]) WITH ORDINALITY AS t(kind, body, parts, text_of)
),
-- The flusher's batches are ranges of phones ($10 to $11): the range lets each table be read by its key there (the
-- number of rows in w is unknown to the planner, which would otherwise read whole tables).
flushed AS (
    UPDATE alert_windows a SET flushed_at = $9 FROM w
    WHERE (a.phone_hash, a.channel) = (w.phone_hash, w.channel) AND w.text_of > 0
      AND a.phone_hash BETWEEN $10 AND $11
    RETURNING a.phone_hash, a.channel, a.window_start, w.text_of, w.traceparent, w.n
),
-- A window with nothing to send is forgotten (its changes go with it: ON DELETE CASCADE).
forgotten AS (
    DELETE FROM alert_windows a USING w
    WHERE (a.phone_hash, a.channel) = (w.phone_hash, w.channel) AND w.text_of = 0
      AND a.phone_hash BETWEEN $10 AND $11
),
told AS (
    DELETE FROM alert_changes c USING flushed f
    WHERE (c.phone_hash, c.channel, c.window_start) = (f.phone_hash, f.channel, f.window_start)
      AND c.phone_hash BETWEEN $10 AND $11
),
queued AS (
    -- With the phone, the key names its window: a second flush of the same window can never queue another. The
    -- key leaves the phone out (the unique index holds it already): each message writes a shorter index entry.
    INSERT INTO sms_messages (id, dedup_key, phone_hash, kind, body, parts, traceparent)
    SELECT encode(substring($8::bytea FROM 16 * (f.n::int - 1) + 1 FOR 16), 'hex')::uuid,
           f.channel || ':' || floor(extract(epoch FROM f.window_start))::bigint,
           f.phone_hash, t.kind, t.body, t.parts, f.traceparent
    FROM flushed f JOIN texts t USING (text_of)
    ON CONFLICT (phone_hash, dedup_key) DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM queued
"""


async def flush_windows(
    conn: asyncpg.Connection,
    *,
    phone_hashes: list[str],
    channels: list[str],
    text_of: list[int],
    traceparents: list[str | None],
    kinds: list[str],
    texts: list[str],
    parts: list[int],
    ids: bytes,
    now: datetime,
    first: str,
    last: str,
) -> int:
    """Queue each window's message and mark it flushed now, or forget a window with none; how many were queued.

    text_of: each window's message as a position in kinds, texts and parts (from 1), 0 for none; ids: 16 bytes per
    window, in order; first, last: the batch's range of phones (due_windows'), which holds every window's.
    """
    # Texts joined by hash: a merge join would sort the windows by text and write their messages in that order,
    # scattered over the phone-keyed unique index, rather than in the windows' (phone) order.
    await conn.execute("SET LOCAL enable_mergejoin = off")
    queued = await conn.fetchval(
        FLUSH_WINDOWS, phone_hashes, channels, text_of, traceparents, kinds, texts, parts, ids, now, first, last
    )
    return int(queued)


# --- Alerts: coordinator contacts ---


async def add_contact(
    conn: asyncpg.Connection,
    *,
    contact_id: UUID,
    phone_hash: str,
    e164: str,
    language: str,
    katotth_prefix: str,
) -> asyncpg.Record:
    """Register a number for a region (marking it a contact); the existing registration if it was already there."""
    await conn.execute(
        """INSERT INTO phones (phone_hash, e164, language, is_contact) VALUES ($1, $2, $3, true)
           ON CONFLICT (phone_hash) DO UPDATE SET is_contact = true""",
        phone_hash,
        e164,
        language,
    )
    await conn.execute(
        """INSERT INTO alert_contacts (id, phone_hash, katotth_prefix) VALUES ($1, $2, $3)
           ON CONFLICT (phone_hash, katotth_prefix) DO NOTHING""",
        contact_id,
        phone_hash,
        katotth_prefix,
    )
    row = await conn.fetchrow(
        """SELECT k.id, p.e164, p.language, k.katotth_prefix, k.created_at
           FROM alert_contacts k JOIN phones p USING (phone_hash)
           WHERE k.phone_hash = $1 AND k.katotth_prefix = $2""",
        phone_hash,
        katotth_prefix,
    )
    assert row is not None
    return row


async def list_contacts(
    pool: asyncpg.Pool, *, katotth_prefix: str | None, after: UUID | None, limit: int
) -> list[asyncpg.Record]:
    """Contacts in id order, optionally those whose region lies within a prefix, one page."""
    async with db.connection(pool) as conn:
        return await conn.fetch(
            """SELECT k.id, p.e164, p.language, k.katotth_prefix, k.created_at
               FROM alert_contacts k JOIN phones p USING (phone_hash)
               WHERE ($1::text IS NULL OR starts_with(k.katotth_prefix, $1))
                 AND ($2::uuid IS NULL OR k.id > $2)
               ORDER BY k.id LIMIT $3""",
            katotth_prefix,
            after,
            limit,
        )


async def remove_contact(conn: asyncpg.Connection, contact_id: UUID) -> bool:
    """Remove a registration; the number stops being a contact once it has none left. False if there was none."""
    phone_hash = await conn.fetchval("DELETE FROM alert_contacts WHERE id = $1 RETURNING phone_hash", contact_id)
    if phone_hash is None:
        return False
    await conn.execute(
        """UPDATE phones SET is_contact = false WHERE phone_hash = $1
           AND NOT EXISTS (SELECT 1 FROM alert_contacts WHERE phone_hash = $1)""",
        phone_hash,
    )
    return True


# --- Webhooks: endpoints, the points they match, deliveries ---

WEBHOOK_COLUMNS = """id, owner, url, description, event_types, katotth_prefixes, lat, lon, radius_m, enabled,
    disabled_reason, created_at, updated_at"""
DELIVERY_COLUMNS = """id, seq, webhook_id, event_id, event_type, state, attempts, next_attempt_at, last_status,
    last_error, created_at, delivered_at"""


async def lock_webhook_point(conn: asyncpg.Connection, point_id: UUID) -> None:
    """Serialise, until the transaction ends, what the two webhook consumers do about one point."""
    # Without it a status event could find its point unknown and wait while the point's registration, in a
    # transaction running beside it, finds no waiting event: the event would wait for ever.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 5005))", str(point_id))


async def lock_webhook_points(conn: asyncpg.Connection, point_ids: Sequence[UUID]) -> None:
    """lock_webhook_point for many points, taken in the order given (sorted, so batches never deadlock)."""
    await conn.execute(
        """SELECT pg_advisory_xact_lock(hashtextextended(p, 5005))
           FROM unnest($1::text[]) WITH ORDINALITY AS x(p, n) ORDER BY n""",
        [str(p) for p in point_ids],
    )


async def upsert_webhook_point(
    conn: asyncpg.Connection,
    *,
    point_id: UUID,
    version: int,
    katotth: str,
    lat: float,
    lon: float,
    visibility: str,
    retired: bool,
) -> None:
    """Remember where a point is and who may see it, unless a newer version is already known."""
    await conn.execute(
        """INSERT INTO webhook_points (point_id, version, katotth, lat, lon, visibility, retired)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (point_id) DO UPDATE SET version = excluded.version, katotth = excluded.katotth,
               lat = excluded.lat, lon = excluded.lon, visibility = excluded.visibility, retired = excluded.retired
           WHERE webhook_points.version < excluded.version""",
        point_id,
        version,
        katotth,
        lat,
        lon,
        visibility,
        retired,
    )


async def any_webhook_for(conn: asyncpg.Connection, event_type: str) -> bool:
    """Whether any enabled webhook takes this event type at all."""
    return await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM webhooks WHERE enabled AND $1 = ANY(event_types))", event_type
    )


async def queue_deliveries(
    conn: asyncpg.Connection, *, point_id: UUID, event_id: str, event_type: str, body: str
) -> tuple[bool, int]:
    """Queue the event for every enabled webhook whose filter takes it at the point, in one statement.

    Returns whether the point is known at all and how many deliveries were queued; a hidden point matches nothing,
    and an event already queued for a webhook is left as it is.
    """
    (outcome,) = await queue_many_deliveries(conn, [(point_id, event_id, event_type, body)])
    return outcome


async def insert_delivery(
    conn: asyncpg.Connection, *, id: UUID, webhook_id: UUID, event_id: str, event_type: str, body: str
) -> None:
    """Queue one delivery; an event already queued for the webhook is left as it is."""
    await conn.execute(
        """INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, body) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (webhook_id, event_id) DO NOTHING""",
        id,
        webhook_id,
        event_id,
        event_type,
        body,
    )


async def webhook_event_types(conn: asyncpg.Connection) -> set[str]:
    """The event types any enabled webhook takes."""
    rows = await conn.fetch("SELECT DISTINCT unnest(event_types) AS event_type FROM webhooks WHERE enabled")
    return {row["event_type"] for row in rows}


async def queue_many_deliveries(
    conn: asyncpg.Connection, events: Sequence[tuple[UUID, str, str, str]]
) -> list[tuple[bool, int]]:
    """Queue each event (point, event id, event type, body) for every enabled webhook whose filter takes it, in one
    statement; for each, in order, whether its point is known and how many deliveries were queued."""
    rows = await conn.fetch(
        """WITH event AS (
               SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
                   WITH ORDINALITY AS e(point_id, event_id, event_type, body, n)),
           matched AS (
               SELECT e.n, w.id AS webhook_id, e.event_id, e.event_type, e.body
               FROM event e JOIN webhook_points p ON p.point_id = e.point_id AND p.visibility <> 'hidden'
               JOIN webhooks w ON w.enabled AND e.event_type = ANY(w.event_types)
                 AND ((cardinality(w.katotth_prefixes) = 0 AND w.radius_m IS NULL)
                      OR EXISTS (SELECT 1 FROM unnest(w.katotth_prefixes) AS x WHERE starts_with(p.katotth, x))
                      OR (w.radius_m IS NOT NULL AND 2 * 6371008.8 * asin(sqrt(
                              power(sin(radians(p.lat - w.lat) / 2), 2)
                              + cos(radians(w.lat)) * cos(radians(p.lat)) * power(sin(radians(p.lon - w.lon) / 2), 2)
                          )) <= w.radius_m))),
           queued AS (
               INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, body)
               SELECT gen_random_uuid(), webhook_id, event_id, event_type, body FROM matched ORDER BY n
               ON CONFLICT (webhook_id, event_id) DO NOTHING RETURNING event_id)
           SELECT EXISTS (SELECT 1 FROM webhook_points wp WHERE wp.point_id = e.point_id) AS known,
                  (SELECT count(*) FROM queued q WHERE q.event_id = e.event_id) AS queued
           FROM event e ORDER BY e.n""",
        [e[0] for e in events],
        [e[1] for e in events],
        [e[2] for e in events],
        [e[3] for e in events],
    )
    return [(row["known"], row["queued"]) for row in rows]


async def wait_for_point(
    conn: asyncpg.Connection, *, point_id: UUID, event_id: str, event_type: str, body: str
) -> None:
    """Keep a status event until its point is known."""
    await conn.execute(
        """INSERT INTO webhook_waiting_events (event_id, point_id, event_type, body) VALUES ($1, $2, $3, $4)
           ON CONFLICT (event_id) DO NOTHING""",
        event_id,
        point_id,
        event_type,
        body,
    )


async def take_waiting_events(conn: asyncpg.Connection, point_id: UUID) -> list[asyncpg.Record]:
    """The status events kept for a point, removed (in the caller's transaction), oldest first."""
    return await conn.fetch(
        """DELETE FROM webhook_waiting_events WHERE point_id = $1
           RETURNING event_id, event_type, body, created_at""",
        point_id,
    )


async def count_webhooks(conn: asyncpg.Connection, owner: str) -> int:
    """How many endpoints an integrator has."""
    return await conn.fetchval("SELECT count(*) FROM webhooks WHERE owner = $1", owner)


async def insert_webhook(
    conn: asyncpg.Connection,
    *,
    id: UUID,
    owner: str,
    url: str,
    description: str | None,
    secret: str,
    event_types: list[str],
    katotth_prefixes: list[str],
    lat: float | None,
    lon: float | None,
    radius_m: int | None,
) -> asyncpg.Record:
    """Register an endpoint."""
    return await conn.fetchrow(
        f"""INSERT INTO webhooks (id, owner, url, description, secret, event_types, katotth_prefixes, lat, lon,
               radius_m) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {WEBHOOK_COLUMNS}""",  # noqa: S608 -- constant names and fragments only; values are parameters
        id,
        owner,
        url,
        description,
        secret,
        event_types,
        katotth_prefixes,
        lat,
        lon,
        radius_m,
    )


async def list_webhooks(pool: asyncpg.Pool, owner: str) -> list[asyncpg.Record]:
    """An integrator's endpoints, oldest first."""
    async with db.connection(pool) as conn:
        return await conn.fetch(
            f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE owner = $1 ORDER BY created_at, id",  # noqa: S608 -- constant names and fragments only; values are parameters
            owner,
        )


async def get_webhook(pool: asyncpg.Pool, *, owner: str, webhook_id: UUID) -> asyncpg.Record | None:
    """One of the integrator's endpoints."""
    async with db.connection(pool) as conn:
        return await conn.fetchrow(
            f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE owner = $1 AND id = $2",  # noqa: S608 -- constant names and fragments only; values are parameters
            owner,
            webhook_id,
        )


async def set_webhook_enabled(
    pool: asyncpg.Pool, *, owner: str, webhook_id: UUID, enabled: bool
) -> asyncpg.Record | None:
    """Switch one of the integrator's endpoints on or off."""
    async with db.connection(pool) as conn:
        return await conn.fetchrow(
            f"""UPDATE webhooks SET enabled = $3, disabled_reason = NULL, updated_at = now()
                WHERE owner = $1 AND id = $2
                RETURNING {WEBHOOK_COLUMNS}""",  # noqa: S608 -- constant names and fragments only; values are parameters
            owner,
            webhook_id,
            enabled,
        )


async def delete_webhook(pool: asyncpg.Pool, *, owner: str, webhook_id: UUID) -> bool:
    """Remove one of the integrator's endpoints and its deliveries; False if it has none of that id."""
    async with db.connection(pool) as conn:
        status = await conn.execute("DELETE FROM webhooks WHERE owner = $1 AND id = $2", owner, webhook_id)
    return status != "DELETE 0"


async def list_deliveries(
    pool: asyncpg.Pool, *, webhook_id: UUID, state: str | None, after_seq: int, limit: int
) -> list[asyncpg.Record]:
    """An endpoint's deliveries in the order they were queued, one page."""
    async with db.connection(pool) as conn:
        return await conn.fetch(
            f"""SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
                WHERE webhook_id = $1 AND seq > $2 AND ($3::text IS NULL OR state = $3)
                ORDER BY seq LIMIT $4""",  # noqa: S608 -- constant names and fragments only; values are parameters
            webhook_id,
            after_seq,
            state,
            limit,
        )


async def replay_delivery(pool: asyncpg.Pool, *, webhook_id: UUID, delivery_id: UUID) -> asyncpg.Record | None:
    """Send a delivery again from its first attempt, whatever its state; None if the endpoint has no such one."""
    async with db.connection(pool) as conn:
        return await conn.fetchrow(
            f"""UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_at = now(),
                    last_error = NULL WHERE webhook_id = $1 AND id = $2 RETURNING {DELIVERY_COLUMNS}""",  # noqa: S608 -- constant names and fragments only; values are parameters
            webhook_id,
            delivery_id,
        )


async def replay_dead_deliveries(pool: asyncpg.Pool, *, webhook_id: UUID) -> int:
    """Send every dead delivery of an endpoint again; how many."""
    async with db.connection(pool) as conn:
        status = await conn.execute(
            """UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_at = now(),
                   last_error = NULL WHERE webhook_id = $1 AND state = 'dead'""",
            webhook_id,
        )
    return int(status.split()[-1])


async def claim_due_deliveries(pool: asyncpg.Pool, *, limit: int, lease_s: float) -> list[asyncpg.Record]:
    """Due deliveries of enabled endpoints, leased for lease_s so no other replica sends them meanwhile."""
    # The lease moves next_attempt_at: a replica that dies mid-send leaves them due again once it runs out.
    async with db.connection(pool) as conn:
        return await conn.fetch(
            """WITH due AS (
                   SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                   WHERE d.state = 'pending' AND d.next_attempt_at <= now() AND w.enabled
                   ORDER BY d.next_attempt_at LIMIT $1 FOR UPDATE OF d SKIP LOCKED)
               UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $2)
               FROM due, webhooks w WHERE d.id = due.id AND w.id = d.webhook_id
               RETURNING d.id, d.webhook_id, d.body, d.attempts, w.url, w.secret""",
            limit,
            lease_s,
        )


async def disable_failing_webhook(pool: asyncpg.Pool, *, webhook_id: UUID, after: int, reason: str) -> bool:
    """Switch the endpoint off if its last `after` finished deliveries all went dead; whether this did it."""
    async with db.connection(pool) as conn:
        return bool(
            await conn.fetchval(
                """UPDATE webhooks SET enabled = false, disabled_reason = $3, updated_at = now()
                   WHERE id = $1 AND enabled
                     AND (SELECT count(*) FILTER (WHERE state = 'dead') FROM (
                              SELECT state FROM webhook_deliveries WHERE webhook_id = $1 AND state <> 'pending'
                              ORDER BY seq DESC LIMIT $2) AS last) = $2
                   RETURNING true""",
                webhook_id,
                after,
                reason,
            )
        )


async def record_attempts(
    pool: asyncpg.Pool,
    *,
    delivered: list[tuple[UUID, int]],
    failed: list[tuple[UUID, int | None, str, float | None]],
) -> None:
    """Record a batch's outcomes: (id, status) delivered; (id, status, error, retry in s or None for dead) failed."""
    async with db.connection(pool) as conn, conn.transaction():
        if delivered:
            await conn.executemany(
                """UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1, last_status = $2,
                       last_error = NULL, delivered_at = now() WHERE id = $1 AND state = 'pending'""",
                delivered,
            )
        if failed:
            await conn.executemany(
                """UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3,
                       state = CASE WHEN $4::float8 IS NULL THEN 'dead' ELSE 'pending' END,
                       next_attempt_at = now() + make_interval(secs => coalesce($4::float8, 0))
                   WHERE id = $1 AND state = 'pending'""",
                failed,
            )


async def prune_deliveries(pool: asyncpg.Pool, *, older_than_s: float, batch: int) -> int:
    """Forget delivered and dead deliveries queued more than older_than_s ago, batch rows per statement; how many."""
    removed = 0
    while True:
        async with db.connection(pool) as conn:
            status = await conn.execute(
                """DELETE FROM webhook_deliveries WHERE id IN (
                       SELECT id FROM webhook_deliveries
                       WHERE state <> 'pending' AND created_at < now() - make_interval(secs => $1) LIMIT $2)""",
                older_than_s,
                batch,
            )
            # Events about a point that never arrived.
            await conn.execute(
                "DELETE FROM webhook_waiting_events WHERE created_at < now() - make_interval(secs => $1)", older_than_s
            )
        count = int(status.split()[-1])
        removed += count
        if count < batch:
            return removed
