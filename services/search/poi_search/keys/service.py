"""Issuing, revoking and recognising integrator keys."""

import hashlib
import hmac
import logging
import re
import secrets
from datetime import UTC, datetime

from nats.js.kv import KeyValue
from pydantic import ValidationError

from poi_search import data
from poi_search.keys.models import KEY_ID_PATTERN, KeyRecord

log = logging.getLogger(__name__)
KEY_PREFIX = "poik"
KEY_PATTERN = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})$")


def key_hash(key: str) -> str:
    """The stored form of a key (keys are long random strings, so a plain SHA-256 is enough)."""
    return hashlib.sha256(key.encode()).hexdigest()


async def issue_key(kv: KeyValue, *, name: str, rate_limit: int | None, issued_by: str) -> tuple[KeyRecord, str]:
    """Make a key, store its hash; returns the record and the key, which is never stored."""
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    record = KeyRecord(
        id=key_id,
        name=name,
        key_sha256=key_hash(key),
        rate_limit=rate_limit,
        created_at=datetime.now(UTC),
        created_by=issued_by,
    )
    await data.put_key(kv, key_id, record.model_dump_json().encode())
    return record, key


async def revoke_key(kv: KeyValue, *, key_id: str, revoked_by: str) -> KeyRecord | None:
    """Mark a key revoked (kept, for the record); None if there is no such key. Revoking twice changes nothing."""
    stored = await data.get_key(kv, key_id) if re.fullmatch(KEY_ID_PATTERN, key_id) else None
    if stored is None:
        return None
    record = KeyRecord.model_validate_json(stored)
    if record.revoked_at is None:
        record = record.model_copy(update={"revoked_at": datetime.now(UTC), "revoked_by": revoked_by})
        await data.put_key(kv, key_id, record.model_dump_json().encode())
    return record


async def list_keys(kv: KeyValue) -> list[KeyRecord]:
    """Every key, oldest first."""
    records = [KeyRecord.model_validate_json(value) for value in await data.list_keys(kv)]
    return sorted(records, key=lambda r: r.created_at)


class KeyRing:
    """This replica's view of the active keys, kept current by watching the bucket."""

    def __init__(self) -> None:
        self.loaded = False
        self._active: dict[str, KeyRecord] = {}

    def apply(self, key_id: str, value: bytes | None) -> None:
        """Take a stored record (None: deleted)."""
        self._active.pop(key_id, None)
        if value is None:
            return
        try:
            record = KeyRecord.model_validate_json(value)
        except ValidationError as exc:
            log.error("ignoring unreadable integrator key record %s: %s", key_id, exc)
            return
        if record.revoked_at is None:
            self._active[key_id] = record

    def mark_loaded(self) -> None:
        """Every stored key has been read."""
        self.loaded = True

    def find(self, key: str) -> KeyRecord | None:
        """The active key this is, or None (malformed, unknown or revoked)."""
        match = KEY_PATTERN.fullmatch(key)
        record = self._active.get(match.group(1)) if match else None
        if record is None or not hmac.compare_digest(record.key_sha256, key_hash(key)):
            return None
        return record
