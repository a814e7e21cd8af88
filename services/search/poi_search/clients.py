"""Who calls the public reads, and how often they may: per client IP, or per integrator key or token.

Counting happens in a fixed window per client, shared by every replica through Redis. A round trip to Redis for
every request would cost the hot path more than the search itself, so each replica counts locally and a background
task adds its counts to Redis and reads the totals back, for every client at once, every `rate_limit_sync_s`
(one Lua call). A client is refused once the last known total plus what this replica counted since reaches its
quota: each replica may let a client overshoot by what other replicas counted within one sync interval. If Redis
does not answer, each replica goes on limiting on its own counts alone (logged once), and adds them to Redis when
it is back.
"""

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from poi_search.keys.service import KeyRing
from poi_search.settings import SearchSettings
from poi_shared.auth import InvalidToken, Principal, Role, TokenVerifier
from poi_shared.errors import PROBLEM_JSON, RETRY_AFTER_S, problem, reason

log = logging.getLogger(__name__)
PUBLIC_PREFIXES = ("/v1/search/", "/v1/opendata/", "/v1/ogc", "/v1/changes")
"""Paths of the public reads: rate limited, and readable with an API key or an integrator's token."""
API_KEY_HEADER = "X-API-Key"
TOKEN_CACHE_S = 30.0  # a verified token is trusted this long without checking it again (within the token leeway)
TOKEN_CACHE_MAX = 4096
SYNC_BATCH = 1000  # clients per Redis call

# KEYS: the clients' counters; ARGV[1]: their lifetime in ms; ARGV[2..]: what to add to each. Returns the totals.
ADD_COUNTS = """
local totals = {}
for i, key in ipairs(KEYS) do
  local total = redis.call('INCRBY', key, ARGV[i + 1])
  if total == tonumber(ARGV[i + 1]) then
    redis.call('PEXPIRE', key, ARGV[1])
  end
  totals[i] = total
end
return totals
"""


@dataclass(frozen=True, slots=True)
class Client:
    """A caller as the limiter counts it: an id (ip:…, key:…, sub:…), its policy's name, and its quota."""

    id: str
    policy: str
    quota: int


class RateLimiter:
    """Fixed-window request counters per client, shared through Redis, counted locally in between."""

    def __init__(self, cache: redis.Redis, *, namespace: str, window_s: int) -> None:
        self.cache = cache
        self.namespace = namespace
        self.window_s = window_s
        self._window = 0
        self._pending: dict[str, int] = {}  # counted here, not yet sent
        self._sending: dict[str, int] = {}  # sent, not yet confirmed
        self._known: dict[str, int] = {}  # totals in Redis at the last sync
        self._add = cache.register_script(ADD_COUNTS)
        self.redis_up = True

    def hit(self, client: Client, now: float) -> tuple[bool, int, int]:
        """Count a request if the client is within its quota: (allowed, remaining, seconds until the window ends)."""
        window = int(now // self.window_s)
        if window != self._window:
            self._window, self._pending, self._sending, self._known = window, {}, {}, {}
        reset_s = max(1, int((window + 1) * self.window_s - now))
        key = client.id
        used = self._known.get(key, 0) + self._sending.get(key, 0) + self._pending.get(key, 0)
        if used >= client.quota:
            return False, 0, reset_s
        self._pending[key] = self._pending.get(key, 0) + 1
        return True, client.quota - used - 1, reset_s

    async def sync(self) -> None:
        """Add this replica's new counts to Redis and learn every client's total, in one call per batch.

        Only one sync runs at a time (a single background task).
        """
        window, counts = self._window, self._pending
        if not counts:
            return
        self._pending, self._sending = {}, counts
        try:
            for batch in _batches(list(counts.items()), SYNC_BATCH):
                keys = [f"{self.namespace}:ratelimit:{window}:{client}" for client, _ in batch]
                totals = await self._add(keys=keys, args=[self.window_s * 2000, *(n for _, n in batch)])
                for (client, _), total in zip(batch, totals, strict=True):
                    self._sending.pop(client, None)
                    if window == self._window:
                        self._known[client] = int(total)
        except (redis.RedisError, OSError) as exc:
            if self.redis_up:
                log.warning("rate limits are counted per replica while Redis does not answer: %r", exc)
                self.redis_up = False
            for client, n in self._sending.items():  # keep counting here what Redis did not take
                self._pending[client] = self._pending.get(client, 0) + n
            return
        finally:
            self._sending = {}
        if not self.redis_up:
            log.warning("Redis answers again: the replicas share their rate-limit counts again")
            self.redis_up = True


def _batches(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ClientLimits:
    """ASGI middleware on the public reads: recognises the client, refuses it past its quota, says how much is left.

    Answers 401 for an API key or token that cannot be trusted, 503 while the keys are still being read, and 429
    with Retry-After past the quota; every answer carries RateLimit and RateLimit-Policy (IETF draft
    "RateLimit header fields for HTTP", structured-field form).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._tokens: dict[str, tuple[Principal, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        limiter: RateLimiter | None = getattr(state, "rate_limiter", None)
        if limiter is None:  # the lifespan has not run: nothing to count with yet
            await self.app(scope, receive, send)
            return
        client = await self._client(scope, state)
        if not isinstance(client, Client):
            await client(scope, receive, send)
            return
        allowed, remaining, reset_s = limiter.hit(client, time.time())
        headers = [
            (b"ratelimit", f'"{client.policy}";r={remaining};t={reset_s}'.encode()),
            (b"ratelimit-policy", f'"{client.policy}";q={client.quota};w={limiter.window_s}'.encode()),
        ]
        if not allowed:
            refusal = problem(
                429,
                reason(429),
                f"more than {client.quota} requests in {limiter.window_s} s; an API key raises the limit",
                headers={"Retry-After": str(reset_s)},
            )
            refusal.raw_headers.extend(headers)
            await refusal(scope, receive, send)
            return

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_limits)

    async def _client(self, scope: Scope, state: Any) -> Client | Any:
        """The client to count, or the problem response that refuses it."""
        settings: SearchSettings = state.settings
        api_key = authorization = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                api_key = value.decode("latin-1").strip()
            elif name == b"authorization":
                authorization = value.decode("latin-1")
        if api_key is not None:
            keys: KeyRing = state.key_ring
            if not keys.loaded:
                return problem(
                    503,
                    reason(503),
                    "integrator keys are still being read; retry shortly",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                    dependency="nats",
                )
            record = keys.find(api_key)
            if record is None:
                return _unauthorized("unknown or revoked API key")
            return Client(f"key:{record.id}", "integrator", record.rate_limit or settings.rate_limit_integrator)
        if authorization is not None:
            principal = await self._verify(authorization, state.token_verifier)
            if principal is None:
                return _unauthorized("invalid bearer token")
            if principal.has(Role.integrator, Role.admin):
                return Client(f"sub:{principal.subject}", "integrator", settings.rate_limit_integrator)
        host = scope["client"][0] if scope.get("client") else "unknown"
        return Client(f"ip:{host}", "ip", settings.rate_limit_ip)

    async def _verify(self, authorization: str, verifier: TokenVerifier) -> Principal | None:
        """The token's principal (cached briefly, as verifying costs more than the search), None if untrusted.

        Verified in the event loop, but by a verifier that may fetch keys from a JWKS URL (in the thread pool).
        """
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        now = time.monotonic()
        cached = self._tokens.get(token)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            principal = (
                await run_in_threadpool(verifier.verify, token) if verifier.fetches_keys else verifier.verify(token)
            )
        except InvalidToken:
            return None
        if len(self._tokens) >= TOKEN_CACHE_MAX:
            self._tokens.clear()
        self._tokens[token] = (principal, now + TOKEN_CACHE_S)
        return principal


def _unauthorized(detail: str) -> Any:
    return problem(401, reason(401), detail, headers={"WWW-Authenticate": 'Bearer realm="poi"'})


async def sync_limits(limiter: RateLimiter, *, every_s: float, stop: asyncio.Event) -> None:
    """Sync the counters with Redis until stopped."""
    while not stop.is_set():
        await limiter.sync()
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except TimeoutError:
            pass


def document_clients(app: FastAPI) -> None:
    """Document on every public read the optional API key or token, and the 401, 429 and 304 they may bring."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        schemes = document["components"]["securitySchemes"]
        if "apiKey" in schemes:
            return document
        schemes["apiKey"] = {
            "type": "apiKey",
            "in": "header",
            "name": API_KEY_HEADER,
            "description": "An integrator key (`poi keys issue`): a higher rate limit than anonymous clients get.",
        }
        limits = {
            "RateLimit": {
                "description": "The client's policy, requests left (r) and seconds until reset (t).",
                "schema": {"type": "string"},
            },
            "RateLimit-Policy": {
                "description": "The client's quota (q) per window (w seconds).",
                "schema": {"type": "string"},
            },
        }
        for path, item in document["paths"].items():
            if not path.startswith(PUBLIC_PREFIXES):
                continue
            for operation in item.values():
                operation["security"] = [{}, {"bearer": []}, {"apiKey": []}]
                responses = operation["responses"]
                problem_body = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
                responses["304"] = {"description": "The client's copy (If-None-Match) is current.", "headers": limits}
                responses["401"] = {
                    "description": "An API key or bearer token that cannot be trusted.",
                    "headers": {
                        "WWW-Authenticate": {"description": "The bearer challenge.", "schema": {"type": "string"}}
                    },
                    "content": problem_body,
                }
                responses["414"] = {"description": "The query string is too long.", "content": problem_body}
                responses["429"] = {
                    "description": "Past the client's rate limit; retry after Retry-After seconds.",
                    "headers": {
                        "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer", "minimum": 0}},
                        **limits,
                    },
                    "content": problem_body,
                }
                for status, response in responses.items():
                    if status.startswith("2"):
                        response.setdefault("headers", {}).update(limits)
                operation["responses"] = dict(sorted(responses.items()))
        return document

    app.openapi = openapi  # type: ignore[method-assign]
