"""Registering coordinator contacts: a mobile number, hashed like every number notify keeps, for a region."""

import uuid
from typing import Any

import asyncpg
from pydantic import SecretStr

from poi_notify import data
from poi_notify.phones.service import mask, parse, phone_hash
from poi_shared import db


def view(row: Any) -> dict[str, Any]:
    """A contact row as the API shows it."""
    return {
        "id": row["id"],
        "phone": mask(row["e164"]),
        "katotth_prefix": row["katotth_prefix"],
        "language": row["language"],
        "created_at": row["created_at"],
    }


async def add_contact(pool: asyncpg.Pool, *, key: SecretStr, phone: str, katotth_prefix: str, language: str) -> dict:
    """Register the number for the region; registering it again returns the same contact."""
    e164 = parse(phone)  # InvalidPhone saying why
    async with db.connection(pool) as conn, conn.transaction():
        row = await data.add_contact(
            conn,
            contact_id=uuid.uuid4(),
            phone_hash=phone_hash(key, e164),
            e164=e164,
            language=language,
            katotth_prefix=katotth_prefix,
        )
    return view(row)


async def remove_contact(pool: asyncpg.Pool, contact_id: uuid.UUID) -> bool:
    """Remove a registration; False if there was none."""
    async with db.connection(pool) as conn, conn.transaction():
        return await data.remove_contact(conn, contact_id)
