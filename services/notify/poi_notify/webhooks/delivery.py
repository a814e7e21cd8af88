"""Sending deliveries: the SSRF guard, the signature, one POST, and the loop that retries and dead-letters.

Each delivery is POSTed as a CloudEvents 1.0 structured-mode JSON body with three headers (the Standard Webhooks
names): `webhook-id` (the delivery id, the same on every retry: receivers de-duplicate by it), `webhook-timestamp`
(Unix seconds of this attempt) and `webhook-signature` = "v1=" + hex HMAC-SHA256 under the endpoint's secret of
f"{timestamp}.{body}" (the body's exact bytes). Any 2xx is success; anything else, or no answer within the timeout,
is retried with capped exponential backoff, and dead-lettered after the configured number of attempts. Deliveries
are sent concurrently: an endpoint may receive events out of order (each carries its point's status version).
"""

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import httpx

from poi_notify import data
from poi_notify.settings import NotifySettings

log = logging.getLogger(__name__)
SIGNATURE_VERSION = "v1"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
USER_AGENT = "poi-notify-webhooks/1"


class UnsafeURL(ValueError):
    """A webhook URL notify must not call: wrong scheme, or a host that is not a public address."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header: v1= and the hex HMAC-SHA256 of "{timestamp}.{body}"."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def check_url(url: str, *, allow_loopback_http: bool) -> httpx.URL:
    """The URL parsed, or UnsafeURL: https only (http too with the loopback setting), a host, no credentials."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UnsafeURL(f"not a URL: {exc}") from None
    schemes = ("https", "http") if allow_loopback_http else ("https",)
    if parsed.scheme not in schemes:
        raise UnsafeURL("must be an https URL")
    if not parsed.host:
        raise UnsafeURL("must name a host")
    if parsed.userinfo:
        raise UnsafeURL("must not carry credentials; deliveries are authenticated by their signature")
    if parsed.fragment:
        raise UnsafeURL("must not have a fragment")
    return parsed


def allowed_address(address: str, *, allow_loopback: bool) -> bool:
    """Whether notify may connect to the address: a public one, or loopback when the setting allows."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return allow_loopback
    # is_global leaves out private, link-local, shared (CGNAT), reserved and documentation ranges.
    return ip.is_global and not ip.is_multicast


async def resolve_public(host: str, port: int, *, allow_loopback: bool) -> list[str]:
    """Every address the host resolves to, or UnsafeURL if any is not allowed (or it does not resolve)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeURL(f"host {host!r} does not resolve: {exc.strerror}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    refused = [a for a in addresses if not allowed_address(a, allow_loopback=allow_loopback)]
    if refused or not addresses:
        raise UnsafeURL(f"host {host!r} resolves to an address that is not public ({', '.join(refused)})")
    return addresses


async def check_target(url: str, *, allow_loopback_http: bool) -> tuple[httpx.URL, list[str]]:
    """The URL and the addresses it may be reached at, or UnsafeURL."""
    parsed = check_url(url, allow_loopback_http=allow_loopback_http)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return parsed, await resolve_public(parsed.host, port, allow_loopback=allow_loopback_http)


@dataclass(frozen=True)
class Attempt:
    """How one POST went: the status code, or why there was none."""

    status: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        """A 2xx answer."""
        return self.status is not None and 200 <= self.status < 300


async def post(
    client: httpx.AsyncClient, *, url: str, secret: str, delivery_id: str, body: bytes, settings: NotifySettings
) -> Attempt:
    """POST one signed delivery to the address checked just now (DNS is not asked again, so it cannot rebind)."""
    try:
        target, addresses = await check_target(url, allow_loopback_http=settings.webhook_allow_loopback_http)
    except UnsafeURL as exc:
        return Attempt(None, f"refused: {exc}")
    timestamp = int(time.time())
    headers = {
        "host": target.netloc.decode("ascii"),
        "content-type": CONTENT_TYPE,
        "user-agent": USER_AGENT,
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, timestamp, body),
    }
    # Connect to the checked address; TLS still verifies the certificate against the URL's host name.
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        async with asyncio.timeout(settings.webhook_timeout_s):
            async with client.stream(
                "POST", target.copy_with(host=addresses[0]), content=body, headers=headers, extensions=extensions
            ) as response:
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read >= settings.webhook_response_max_bytes:
                        break  # only the status code counts; the rest of the body is never read
        if 200 <= response.status_code < 300:
            return Attempt(response.status_code, None)
        return Attempt(response.status_code, f"answered {response.status_code}")
    except TimeoutError:
        return Attempt(None, f"no answer within {settings.webhook_timeout_s:g}s")
    except httpx.HTTPError as exc:
        return Attempt(None, f"{type(exc).__name__}: {exc}"[:300])


def retry_delay(attempts: int, settings: NotifySettings) -> float:
    """Seconds before the next attempt after `attempts` failures: doubling, capped, with up to 20% jitter."""
    base = min(settings.webhook_retry_initial_s * 2 ** (attempts - 1), settings.webhook_retry_max_s)
    return base * random.uniform(0.8, 1.0)


async def deliver_one(
    pool: asyncpg.Pool,
    client: httpx.AsyncClient,
    settings: NotifySettings,
    row: asyncpg.Record,
    *,
    count: Callable[[str], None],
) -> None:
    """POST one claimed delivery and record how it went: delivered, retried later, or dead."""
    attempt = await post(
        client,
        url=row["url"],
        secret=row["secret"],
        delivery_id=str(row["id"]),
        body=row["body"].encode(),
        settings=settings,
    )
    attempts = row["attempts"] + 1
    if attempt.status is not None and attempt.delivered:
        await data.record_attempts(pool, delivered=[(row["id"], attempt.status)], failed=[])
        count("delivered")
        return
    dead = attempts >= settings.webhook_max_attempts
    retry_in = None if dead else retry_delay(attempts, settings)
    await data.record_attempts(pool, delivered=[], failed=[(row["id"], attempt.status, attempt.error or "", retry_in)])
    count("dead" if dead else "retry")
    log.info(
        "webhook delivery %s attempt %d failed (%s)%s",
        row["id"],
        attempts,
        attempt.error,
        "; dead-lettered" if dead else f"; next in {retry_in:.0f}s",
    )
    if dead:
        after = settings.webhook_disable_after_dead
        last = attempt.error or attempt.status
        reason = f"switched off by notify: its last {after} deliveries all failed (the last: {last})"
        if await data.disable_failing_webhook(pool, webhook_id=row["webhook_id"], after=after, reason=reason[:500]):
            log.warning("webhook %s switched off: its last %d deliveries all failed", row["webhook_id"], after)


async def run_deliveries(
    pool: asyncpg.Pool,
    client: httpx.AsyncClient,
    settings: NotifySettings,
    *,
    stop: asyncio.Event,
    wake: asyncio.Event,
    count: Callable[[str], None],
) -> None:
    """Keep up to webhook_concurrency deliveries in flight until stopped, claiming more as half the slots free up.

    No batch waits for its slowest endpoint: a slow or silent one holds only its own slot (at most the timeout).
    """
    lease_s = settings.webhook_timeout_s * 2 + 30
    in_flight: set[asyncio.Task[None]] = set()
    try:
        while not stop.is_set():
            wake.clear()
            room = settings.webhook_concurrency - len(in_flight)
            if room >= max(1, settings.webhook_concurrency // 2) or not in_flight:
                due = await data.claim_due_deliveries(pool, limit=min(room, settings.webhook_batch), lease_s=lease_s)
                for row in due:
                    in_flight.add(asyncio.create_task(deliver_one(pool, client, settings, row, count=count)))
                more_due = len(due) == min(room, settings.webhook_batch)
            else:
                more_due = True
            waiters = set() if more_due else {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())}
            if in_flight or waiters:
                timeout = None if more_due else settings.webhook_poll_s
                await asyncio.wait(in_flight | waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            in_flight = _settled(in_flight)
    finally:
        # Stopping: what is in flight finishes (each bounded by the timeout); a cancelled one is sent again later.
        if in_flight:
            await asyncio.wait(in_flight, timeout=settings.webhook_timeout_s + 5)
        for task in in_flight:
            task.cancel()
        _settled(in_flight)


def _settled(tasks: set[asyncio.Task[None]]) -> set[asyncio.Task[None]]:
    """The tasks still running; a finished one's failure is logged (its delivery is sent again after the lease)."""
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.warning("a webhook delivery could not be recorded: %r", task.exception())
    return {task for task in tasks if not task.done()}
