"""Subscribing, confirming with a code, and leaving; plain functions over the database."""

import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from uuid import UUID

import asyncpg
from pydantic import SecretStr

from poi_notify import cells, data
from poi_notify.phones.service import mask
from poi_notify.settings import NotifySettings
from poi_notify.sms import replies
from poi_notify.sms import service as sms
from poi_shared import db

log = logging.getLogger(__name__)


class NumberStopped(Exception):
    """The number sent STOP: nothing is sent to it, a code included, until it sends START."""


class UnknownPoint(Exception):
    """No point the public may follow has this id (never registered, retired, hidden, or not heard of yet)."""


class TooManySubscriptions(Exception):
    """The number has as many subscriptions as allowed."""


class CodeRefused(Exception):
    """No live code for the number, or a wrong one; tries_left says how many remain (0: ask for a new code)."""

    def __init__(self, tries_left: int) -> None:
        super().__init__(tries_left)
        self.tries_left = tries_left


@dataclass(frozen=True)
class Target:
    """What a subscription follows: a point, or a disk."""

    point_id: UUID | None = None
    lat: float | None = None
    lon: float | None = None
    radius_m: int | None = None


@dataclass(frozen=True)
class Redeemed:
    """What a code did: its purpose and how many subscriptions; purpose None when it was refused."""

    purpose: str | None
    subscriptions: int = 0
    tries_left: int = 0


def code_hash(key: SecretStr, phone_hash: str, code: str) -> str:
    """A code as stored: an HMAC under the phone key, so the table alone does not give it away."""
    message = f"{phone_hash}:{code}".encode()
    return hmac.new(key.get_secret_value().encode(), message, hashlib.sha256).hexdigest()


def new_code() -> str:
    """Six random digits."""
    return f"{secrets.randbelow(1_000_000):06d}"


async def _send_code(
    conn: asyncpg.Connection, settings: NotifySettings, *, phone_hash: str, purpose: str, language: str
) -> None:
    """Replace the number's code with a new one and queue it, in the caller's transaction."""
    assert settings.phone_key is not None
    code = new_code()
    await data.replace_code(
        conn,
        phone_hash=phone_hash,
        purpose=purpose,
        code_hash=code_hash(settings.phone_key, phone_hash, code),
        ttl_s=settings.code_ttl_s,
    )
    name = "code" if purpose == "subscribe" else "unsubscribe_code"
    await sms.enqueue(
        conn,
        phone_hash=phone_hash,
        kind="confirmation",
        body=replies.reply(name, language, code=code),
        dedup_key=f"code:{phone_hash}:{uuid.uuid4()}",
    )


async def subscribe(
    pool: asyncpg.Pool,
    settings: NotifySettings,
    *,
    phone_hash: str,
    e164: str,
    language: str,
    latin: bool,
    target: Target,
    services: list[str],
) -> UUID:
    """Store the subscription as pending and send the number a code; its id."""
    id = uuid.uuid4()
    if target.point_id is not None:
        kind, covering = "point", []
    else:
        assert target.lat is not None and target.lon is not None and target.radius_m is not None
        kind, covering = "area", cells.cells_covering(target.lat, target.lon, target.radius_m)
    async with db.connection(pool) as conn, conn.transaction():
        # Checked before any code goes out: a subscription no alert could ever reach is an SMS spent for nothing.
        if target.point_id is not None and not await data.point_is_public(conn, target.point_id):
            raise UnknownPoint()
        await data.ensure_phone(conn, phone_hash=phone_hash, e164=e164, language=language, latin=latin)
        number = await data.phone(conn, phone_hash)
        assert number is not None
        if number["stopped_at"] is not None:
            raise NumberStopped()
        if await data.count_subscriptions(conn, phone_hash) >= settings.max_subscriptions_per_phone:
            raise TooManySubscriptions()
        await data.insert_pending_subscription(
            conn,
            id=id,
            phone_hash=phone_hash,
            language=language,
            latin=latin,
            kind=kind,
            point_id=target.point_id,
            lat=target.lat,
            lon=target.lon,
            radius_m=target.radius_m,
            cells=covering,
            services=sorted(set(services)),
            ttl_s=settings.pending_ttl_s,
        )
        await _send_code(conn, settings, phone_hash=phone_hash, purpose="subscribe", language=language)
    log.info("subscription %s (%s) for %s waits for its code", id, kind, mask(e164))
    return id


async def request_unsubscribe(pool: asyncpg.Pool, settings: NotifySettings, *, phone_hash: str) -> bool:
    """Send a code to remove the number's subscriptions, if it has any and may get SMS; whether one was sent."""
    async with db.connection(pool) as conn, conn.transaction():
        number = await data.phone(conn, phone_hash)
        if number is None or number["stopped_at"] is not None or number["confirmed_at"] is None:
            return False
        if not await data.count_subscriptions(conn, phone_hash):
            return False
        await _send_code(conn, settings, phone_hash=phone_hash, purpose="unsubscribe", language=number["language"])
    return True


async def redeem(
    conn: asyncpg.Connection, settings: NotifySettings, *, phone_hash: str, code: str, purpose: str | None = None
) -> Redeemed:
    """Use the number's code in the caller's transaction: confirm its pending subscriptions or remove them all.

    A wrong code is counted in the same transaction, so the caller commits either way.
    """
    assert settings.phone_key is not None
    live = await data.live_code(conn, phone_hash)
    if live is None or (purpose is not None and live["purpose"] != purpose):
        return Redeemed(None)
    if not hmac.compare_digest(live["code_hash"], code_hash(settings.phone_key, phone_hash, code)):
        left = await data.count_wrong_code(conn, phone_hash, max_attempts=settings.code_max_attempts)
        return Redeemed(None, tries_left=left)
    await data.delete_code(conn, phone_hash)
    if live["purpose"] == "subscribe":
        count = await data.confirm_pending(conn, phone_hash)
        answer = "confirmed"
    else:
        count = await data.delete_subscriptions(conn, phone_hash)
        answer = "unsubscribed"
    number = await data.phone(conn, phone_hash)
    assert number is not None
    await sms.enqueue(
        conn,
        phone_hash=phone_hash,
        kind="reply",
        body=replies.reply(answer, number["language"]),
        dedup_key=f"{answer}:{phone_hash}:{uuid.uuid4()}",
    )
    return Redeemed(live["purpose"], count)


async def confirm(
    pool: asyncpg.Pool, settings: NotifySettings, *, phone_hash: str, code: str, purpose: str | None = None
) -> Redeemed:
    """Use a code given through the API; CodeRefused (after the wrong try is counted) if it is not the live one."""
    async with db.connection(pool) as conn, conn.transaction():
        redeemed = await redeem(conn, settings, phone_hash=phone_hash, code=code, purpose=purpose)
    if redeemed.purpose is None:
        raise CodeRefused(redeemed.tries_left)
    return redeemed


async def state(pool: asyncpg.Pool, id: UUID) -> dict[str, object] | None:
    """A subscription's state, its number masked; None if there is none (or it expired unconfirmed)."""
    row = await data.subscription_state(pool, id)
    if row is None:
        return None
    found = dict(row)
    e164, stopped_at = found.pop("e164"), found.pop("stopped_at")
    if stopped_at is not None:
        found["state"] = "stopped"
    return {**found, "phone": mask(e164)}
