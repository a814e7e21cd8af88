"""Queueing SMS: the one way any part of notify asks for a message to be sent."""

import uuid
from datetime import datetime

import asyncpg

from poi_notify import data
from poi_notify.sms import text

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
    )
