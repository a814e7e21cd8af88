"""Queueing SMS: the one way any part of notify asks for a message to be sent."""

import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from poi_notify import data
from poi_notify.sms import text
from poi_shared.telemetry import current_traceparent

# Kinds that may go to a number that has not confirmed: the code itself, and answers to a text it sent us.
UNCONFIRMED_KINDS = frozenset({"confirmation", "reply", "lookup"})


class MessageTooLong(ValueError):
    """A body over text.MAX_PARTS parts: a template that must be shortened, never sent."""


async def enqueue(
    conn: asyncpg.Connection,
    *,
    phone_hash: str,
    kind: str,
    body: str,
    dedup_key: str,
    not_before: datetime | None = None,
) -> uuid.UUID | None:
    """Queue one SMS in the caller's transaction; None when nothing may be sent or the key was queued before."""
    phone = await data.phone_for_sending(conn, phone_hash)
    if phone is None or phone["stopped_at"] is not None:
        return None
    if kind not in UNCONFIRMED_KINDS and phone["confirmed_at"] is None and not phone["is_contact"]:
        return None
    if phone["latin"]:
        body = text.latin(body)
    count = text.parts(body)
    if count > text.MAX_PARTS:
        raise MessageTooLong(f"{kind} message of {count} parts (at most {text.MAX_PARTS}): {body[:40]}…")
    return await data.insert_sms(
        conn,
        id=uuid.uuid4(),
        dedup_key=dedup_key,
        phone_hash=phone_hash,
        kind=kind,
        body=body,
        parts=count,
        not_before=not_before,
        traceparent=current_traceparent(),
    )


# --- Many at once (alerts flush thousands of windows per transaction) ---


def time_ordered_ids(count: int) -> list[uuid.UUID]:
    """count UUIDv7s (time, then random): a million messages queued in a minute extend the primary key at its end
    instead of touching a random page of it each."""
    stamp = (time.time_ns() // 1_000_000) << 80
    # One read of the system's randomness for all of them (one per id was the flush's largest single cost).
    randomness = os.urandom(10 * count)
    ids = []
    for at in range(0, 10 * count, 10):
        value = stamp | int.from_bytes(randomness[at : at + 10])
        value = value & ~(0xF << 76) | 0x7 << 76  # version 7
        value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 4122 variant
        ids.append(uuid.UUID(int=value))
    return ids


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for enqueue_many."""

    phone_hash: str
    kind: str
    body: str
    dedup_key: str
    not_before: datetime | None = None
    traceparent: str | None = None  # of the event that caused it (its send span joins that trace)


async def enqueue_many(
    conn: asyncpg.Connection, messages: list[Outgoing], *, phones: Mapping[str, asyncpg.Record]
) -> list[uuid.UUID | None]:
    """enqueue for many messages in one statement, by the same rules; each message's new id, or None.

    phones: the numbers' settings (latin, confirmed_at, stopped_at, is_contact), read by the caller in the same
    transaction; a STOP committed since is honoured by the sender, which cancels what was queued before it.
    """
    rows: list[tuple[Outgoing, str, int]] = []
    # Alerts repeat a few texts to many phones: each distinct text is transliterated and counted once.
    latin: dict[str, str] = {}
    counts: dict[str, int] = {}
    for message in messages:
        phone = phones.get(message.phone_hash)
        if phone is None or phone["stopped_at"] is not None:
            continue
        if message.kind not in UNCONFIRMED_KINDS and phone["confirmed_at"] is None and not phone["is_contact"]:
            continue
        body = message.body
        if phone["latin"]:
            body = latin[body] if body in latin else latin.setdefault(body, text.latin(body))
        count = counts[body] if body in counts else counts.setdefault(body, text.parts(body))
        if count > text.MAX_PARTS:
            raise MessageTooLong(f"{message.kind} message of {count} parts (at most {text.MAX_PARTS}): {body[:40]}…")
        rows.append((message, body, count))
    new_ids = time_ordered_ids(len(rows))
    inserted = set(
        await data.insert_sms_many(
            conn,
            ids=new_ids,
            dedup_keys=[r[0].dedup_key for r in rows],
            phone_hashes=[r[0].phone_hash for r in rows],
            kinds=[r[0].kind for r in rows],
            bodies=[r[1] for r in rows],
            parts=[r[2] for r in rows],
            not_befores=[r[0].not_before for r in rows],
            traceparents=[r[0].traceparent for r in rows],
        )
    )
    ids = {r[0].dedup_key: i for r, i in zip(rows, new_ids, strict=True) if i in inserted}
    return [ids.get(m.dedup_key) for m in messages]
