"""SMS from residents (through Kannel's sms-service): STOP, START, a confirmation code, or a place to look up."""

import logging
import re
import uuid
from typing import Literal

import asyncpg
import httpx
import redis.asyncio as redis

from poi_notify import data, throttle
from poi_notify.lookup import service as lookup
from poi_notify.phones.service import mask
from poi_notify.settings import NotifySettings
from poi_notify.sms import replies
from poi_notify.sms import service as sms
from poi_notify.subscriptions import service as subscriptions
from poi_shared import db
from poi_shared.errors import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)
HOUR_S = 3600
# Any case, any spacing; the Ukrainian words too, and what operators' own STOP handling usually knows.
STOP_WORDS = frozenset({"STOP", "STOP ALL", "STOPALL", "СТОП", "UNSUBSCRIBE", "ВІДПИСАТИСЯ", "ВІДПИСКА"})
START_WORDS = frozenset({"START", "СТАРТ", "UNSTOP"})
CODE = re.compile(r"[0-9]{6}")
Handled = Literal["stop", "start", "code", "lookup", "quiet"]


def keyword(text: str) -> str:
    """The text as a keyword: spaces collapsed, upper case, trailing punctuation dropped."""
    return " ".join(text.split()).upper().rstrip(".!")


def language_of(text: str) -> str:
    """Ukrainian for Cyrillic text, English for Latin text: for a number notify has not heard from before."""
    return "uk" if re.search("[А-Яа-яІіЇїЄєҐґ]", text) else "en"


async def handle(
    pool: asyncpg.Pool,
    cache: redis.Redis,
    http: httpx.AsyncClient,
    settings: NotifySettings,
    *,
    phone_hash: str,
    e164: str,
    text: str,
) -> Handled:
    """Act on one inbound SMS and queue its replies: keywords and codes at once, anything else as a lookup."""
    word = keyword(text)
    async with db.connection(pool) as conn, conn.transaction():
        await data.ensure_phone(conn, phone_hash=phone_hash, e164=e164, language=language_of(text), latin=False)
        number = await data.phone(conn, phone_hash)
        assert number is not None
        language = number["language"]
        if word in STOP_WORDS:
            if number["stopped_at"] is None:
                # Cancel what waits, queue the one acknowledgement, then stop: the acknowledgement is queued at
                # the moment of STOP, so the sender's check (queued before STOP: cancelled) lets it through.
                await data.cancel_queued(conn, phone_hash)
                await _reply(conn, phone_hash, "stopped", language, dedup=f"stop:{phone_hash}:{uuid.uuid4()}")
                await data.stop_phone(conn, phone_hash)
                log.info("STOP from %s: nothing more is sent", mask(e164))
            return "stop"
        if word in START_WORDS:
            if await data.start_phone(conn, phone_hash):
                await _reply(conn, phone_hash, "started", language, dedup=f"start:{phone_hash}:{uuid.uuid4()}")
                log.info("START from %s", mask(e164))
            return "start"
        if number["stopped_at"] is not None:
            return "quiet"  # a stopped number gets nothing, not even an answer, until it sends START
        if CODE.fullmatch(word):
            redeemed = await subscriptions.redeem(conn, settings, phone_hash=phone_hash, code=word)
            if redeemed.purpose is not None:
                return "code"
        # Lookups and wrong-code answers are limited per number: a loop with another robot must not cost much.
        if not await _may_reply(cache, settings, phone_hash):
            return "quiet"
        if CODE.fullmatch(word):
            await _reply(conn, phone_hash, "wrong_code", language, dedup=f"wrong_code:{phone_hash}:{uuid.uuid4()}")
            return "code"
    # Anything else names a place: search is asked over HTTP outside any transaction, then the replies are queued
    # (an unknown place, or search not answering, gets a helpful reply rather than silence).
    bodies = await lookup.answer(http, settings, text=text, language=language)
    request_id = uuid.uuid4()
    async with db.connection(pool) as conn, conn.transaction():
        for n, body in enumerate(bodies):
            await sms.enqueue(
                conn, phone_hash=phone_hash, kind="lookup", body=body, dedup_key=f"lookup:{phone_hash}:{request_id}:{n}"
            )
    return "lookup"


async def _may_reply(cache: redis.Redis, settings: NotifySettings, phone_hash: str) -> bool:
    """Count a reply to the number; False past the limit, or while Redis does not answer (no reply then)."""
    limit = throttle.Limit("phone", phone_hash, settings.replies_per_phone_per_hour, HOUR_S)
    try:
        await throttle.count(cache, settings.namespace, "reply", [limit])
    except throttle.Throttled:
        return False
    except DEPENDENCY_ERRORS as exc:
        log.warning("no reply to an inbound SMS while Redis does not answer: %r", exc)
        return False
    return True


async def _reply(conn: asyncpg.Connection, phone_hash: str, name: str, language: str, *, dedup: str) -> None:
    await sms.enqueue(conn, phone_hash=phone_hash, kind="reply", body=replies.reply(name, language), dedup_key=dedup)
