"""Bearer JWT verification, roles and scopes; public read endpoints need no token."""

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated
from uuid import UUID

import jwt
from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from poi_shared.contracts import KATOTTH_SCOPE_PATTERN
from poi_shared.settings import AuthSettings

ASYMMETRIC_ALGORITHMS = ["RS256", "ES256", "EdDSA"]
VERIFIED_CACHE_S = 30.0
VERIFIED_CACHE_MAX = 4096


class Role(StrEnum):
    """What an account may do."""

    admin = "admin"
    coordinator = "coordinator"  # scope: KATOTTH code prefixes
    operator = "operator"  # scope: point ids
    integrator = "integrator"


@dataclass(frozen=True)
class Principal:
    """The verified caller."""

    subject: str
    roles: frozenset[Role]
    katotth: tuple[str, ...] = ()
    points: frozenset[UUID] = frozenset()

    def has(self, *roles: Role) -> bool:
        """True if the caller holds any of the roles."""
        return bool(self.roles.intersection(roles))

    def coordinates(self, katotth: str) -> bool:
        """True if the caller may act on an area: admin, or coordinator whose scope covers the code."""
        if Role.admin in self.roles:
            return True
        return Role.coordinator in self.roles and any(katotth.startswith(p) for p in self.katotth)

    def operates(self, point_id: UUID, katotth: str) -> bool:
        """True if the caller may report on the point: its operator, its area's coordinator, or admin."""
        if Role.operator in self.roles and point_id in self.points:
            return True
        return self.coordinates(katotth)


class InvalidToken(Exception):
    """The token cannot be trusted."""


class TokenVerifier:
    """Verifies tokens with a development secret, a public key, or the provider's JWKS."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self._jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True) if settings.jwks_url else None
        self._verified: dict[str, tuple[Principal, float]] = {}  # token: its principal, trusted until (epoch s)

    @property
    def fetches_keys(self) -> bool:
        """True if verifying may wait on the network (keys from the identity provider's JWKS URL)."""
        return self._jwks is not None

    def verify(self, token: str) -> Principal:
        """Decode and check signature, expiry, issuer and audience; map claims to a principal.

        A token verified is trusted again without decoding for VERIFIED_CACHE_S at most, never past its expiry
        (with the leeway decoding allows): a signature check costs a status report a tenth of its CPU, and an
        operator's phone sends the same token with every report.
        """
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None and cached[1] > now:
            return cached[0]
        principal, expires_at = self._decode(token)
        if len(self._verified) >= VERIFIED_CACHE_MAX:
            self._verified.clear()
        self._verified[token] = (principal, min(now + VERIFIED_CACHE_S, expires_at + self.settings.leeway_s))
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        """The token's principal and expiry (epoch seconds), verified; InvalidToken if it cannot be trusted."""
        s = self.settings
        try:
            if self._jwks is not None:
                key: object = self._jwks.get_signing_key_from_jwt(token).key
                algorithms = ASYMMETRIC_ALGORITHMS
            elif s.public_key:
                key, algorithms = s.public_key, ASYMMETRIC_ALGORITHMS
            elif s.secret is not None:
                key, algorithms = s.secret.get_secret_value(), ["HS256"]
            else:
                raise InvalidToken("no token verification key is configured")
            claims = jwt.decode(
                token,
                key,  # type: ignore[arg-type]
                algorithms=algorithms,
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway_s,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        return principal_from_claims(claims), float(claims["exp"])


def principal_from_claims(claims: dict[str, object]) -> Principal:
    """Read roles and scopes; unknown roles are ignored, malformed claims and scopes rejected."""
    roles, katotth, points = claims.get("roles", []), claims.get("katotth", []), claims.get("points", [])
    if not all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in (roles, katotth, points)):
        raise InvalidToken("roles, katotth and points must be lists of strings")
    assert isinstance(roles, list) and isinstance(katotth, list) and isinstance(points, list)
    try:
        scope = katotth_scope(katotth), point_scope(points)
    except ValueError as exc:
        # A scope the services cannot read means the issuer is wrong: refuse the token rather than guess.
        raise InvalidToken(str(exc)) from exc
    known = {r.value for r in Role}
    return Principal(
        subject=str(claims["sub"]),
        roles=frozenset(Role(r) for r in roles if r in known),
        katotth=scope[0],
        points=scope[1],
    )


def katotth_scope(prefixes: Sequence[str]) -> tuple[str, ...]:
    """A coordinator's areas; ValueError unless each is a KATOTTH code cut at oblast level or below."""
    for prefix in prefixes:
        if not re.fullmatch(KATOTTH_SCOPE_PATTERN, prefix):
            raise ValueError(
                f"katotth scope {prefix!r} is not a KATOTTH code cut at oblast level or below (e.g. UA80, UA4606)"
            )
    return tuple(prefixes)


def point_scope(point_ids: Sequence[str]) -> frozenset[UUID]:
    """An operator's points as UUIDs, so any spelling of an id matches; ValueError for one that is not a UUID."""
    scope = set()
    for point_id in point_ids:
        try:
            scope.add(UUID(point_id))
        except ValueError:
            raise ValueError(f"points scope {point_id!r} is not a point id (a UUID)") from None
    return frozenset(scope)


def issue_token(
    secret: str,
    *,
    subject: str,
    roles: list[str],
    katotth: list[str] | None = None,
    points: list[str] | None = None,
    ttl_s: int = 12 * 3600,
    issuer: str = "poi-dev",
    audience: str = "poi",
) -> str:
    """Sign a development token with the shared secret; ValueError for a scope the services would refuse."""
    now = int(time.time())
    claims = {
        "sub": subject,
        "roles": roles,
        "katotth": list(katotth_scope(katotth or [])),
        "points": [str(p) for p in sorted(point_scope(points or []))],
        "iat": now,
        "exp": now + ttl_s,
        "iss": issuer,
        "aud": audience,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": 'Bearer realm="poi"'})


async def current_principal(request: Request) -> Principal:
    """The caller of an endpoint that needs a token: 401 when missing or invalid.

    A coroutine, verified in the event loop: a signature check takes microseconds, while a plain function dependency
    would cost a hop to FastAPI's thread pool on every request. Only a verifier that fetches keys from a JWKS URL
    (which waits on the network for a key it has not cached) runs in the thread pool.
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("a bearer token is required")
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        if verifier.fetches_keys:
            return await run_in_threadpool(verifier.verify, token.strip())
        return verifier.verify(token.strip())
    except InvalidToken as exc:
        raise _unauthorized(f"invalid token: {exc}") from exc


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def forbid(detail: str) -> HTTPException:
    """403 with a reason."""
    return HTTPException(403, detail)


async def optional_principal(request: Request) -> Principal | None:
    """The caller if a token was sent (and it must then be valid), else None for public reads."""
    if "authorization" not in request.headers:
        return None
    return await current_principal(request)


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]
