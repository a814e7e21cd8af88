"""Queueing SMS: the rules every message is queued by (may_send, fit), and enqueue, which queues one.

The alert flush queues a batch of windows' messages in one statement (data.flush_windows) by the same rules.
"""

import os
import time
import uuid
from datetime import datetime

import asyncpg
import numpy as np

from poi_notify import data
from poi_notify.sms import text
from poi_shared.telemetry import current_traceparent

# Kinds that may go to a number that has not confirmed: the code itself, and answers to a text it sent us.
UNCONFIRMED_KINDS = frozenset({"confirmation", "reply", "lookup"})


class MessageTooLong(ValueError):
    """A body over text.MAX_PARTS parts: a template that must be shortened, never sent."""


def may_send(kind: str, *, stopped: bool, confirmed: bool, is_contact: bool) -> bool:
    """Whether a message of this kind may go to a number: never after STOP, else only once confirmed (but for
    the code itself and answers to its texts), or to a coordinator contact."""
    return not stopped and (kind in UNCONFIRMED_KINDS or confirmed or is_contact)


def fit(kind: str, body: str, *, latin: bool) -> tuple[str, int]:
    """The body as sent (in Latin letters for numbers that asked for it) and its parts; MessageTooLong if over."""
    if latin:
        body = text.latin(body)
    count = text.parts(body)
    if count > text.MAX_PARTS:
        raise MessageTooLong(f"{kind} message of {count} parts (at most {text.MAX_PARTS}): {body[:40]}…")
    return body, count


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
    if phone is None or not may_send(
        kind, stopped=phone["stopped"], confirmed=phone["confirmed"], is_contact=phone["is_contact"]
    ):
        return None
    body, count = fit(kind, body, latin=phone["latin"])
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


def time_ordered_ids(count: int) -> bytes:
    """count UUIDv7s (time, then random), 16 bytes each: a million messages queued in a minute extend the primary
    key at its end instead of touching a random page of it each."""
    # One read of the system's randomness, stamped and marked as a whole: no Python object per id.
    ids = np.frombuffer(os.urandom(16 * count), dtype=np.uint8).reshape(count, 16).copy()
    ids[:, :6] = np.frombuffer((time.time_ns() // 1_000_000).to_bytes(6, "big"), dtype=np.uint8)
    ids[:, 6] = ids[:, 6] & 0x0F | 0x70  # version 7
    ids[:, 8] = ids[:, 8] & 0x3F | 0x80  # RFC 9562 variant
    return ids.tobytes()
