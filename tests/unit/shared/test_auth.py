"""Tokens are verified strictly and scopes decide who may act where."""

import time
import uuid

import jwt
import pytest
from pydantic import SecretStr

from poi_shared.auth import InvalidToken, Principal, Role, TokenVerifier, issue_token, principal_from_claims
from poi_shared.settings import AuthSettings

SECRET = "unit-test-secret-that-is-long-enough-0123"


def verifier() -> TokenVerifier:
    return TokenVerifier(AuthSettings(secret=SecretStr(SECRET)))


def test_valid_token_gives_roles_and_scopes() -> None:
    token = issue_token(SECRET, subject="c-1", roles=["coordinator", "wizard"], katotth=["UA32", "UA80"])
    principal = verifier().verify(token)
    assert principal.subject == "c-1"
    assert principal.roles == {Role.coordinator}  # unknown roles are dropped
    assert principal.katotth == ("UA32", "UA80")


@pytest.mark.parametrize(
    "token",
    [
        issue_token("another-secret-that-is-long-enough-999", subject="x", roles=["admin"]),
        issue_token(SECRET, subject="x", roles=["admin"], ttl_s=-3600),
        issue_token(SECRET, subject="x", roles=["admin"], audience="someone-else"),
        issue_token(SECRET, subject="x", roles=["admin"], issuer="evil"),
        jwt.encode({"sub": "x", "roles": ["admin"], "exp": int(time.time()) + 60}, SECRET, algorithm="HS256"),
        jwt.encode(
            {"sub": "x", "roles": ["admin"], "exp": int(time.time()) + 60, "iss": "poi-dev", "aud": "poi"},
            key=None,
            algorithm="none",
        ),
        "not-a-token",
    ],
    ids=["wrong-key", "expired", "audience", "issuer", "missing-claims", "alg-none", "garbage"],
)
def test_untrustworthy_tokens_are_rejected(token: str) -> None:
    with pytest.raises(InvalidToken):
        verifier().verify(token)


def test_malformed_scope_claims_are_rejected() -> None:
    token = jwt.encode(
        {"sub": "x", "roles": "admin", "exp": int(time.time()) + 60, "iss": "poi-dev", "aud": "poi"},
        SECRET,
        algorithm="HS256",
    )
    with pytest.raises(InvalidToken, match="lists of strings"):
        verifier().verify(token)


def test_no_key_configured_rejects_everything() -> None:
    with pytest.raises(InvalidToken, match="no token verification key"):
        TokenVerifier(AuthSettings()).verify(issue_token(SECRET, subject="x", roles=["admin"]))


def test_coordinator_scope_is_a_code_prefix() -> None:
    kyiv = Principal("c", frozenset({Role.coordinator}), katotth=("UA80",))
    assert kyiv.coordinates("UA80000000000093317")
    assert not kyiv.coordinates("UA46060250010015970")
    assert Principal("a", frozenset({Role.admin})).coordinates("UA46060250010015970")
    assert not Principal("i", frozenset({Role.integrator})).coordinates("UA80000000000093317")


def test_operator_reports_only_on_own_points() -> None:
    own, other = uuid.uuid4(), uuid.uuid4()
    operator = Principal("o", frozenset({Role.operator}), points=frozenset({own}))
    assert operator.operates(own, "UA80000000000093317")
    assert not operator.operates(other, "UA80000000000093317")
    coordinator = Principal("c", frozenset({Role.coordinator}), katotth=("UA80",))
    assert coordinator.operates(other, "UA80000000000093317")


def test_operator_point_ids_compare_as_uuids() -> None:
    point_id = uuid.uuid4()
    token = issue_token(SECRET, subject="o", roles=["operator"], points=[str(point_id).upper()])
    principal = verifier().verify(token)
    assert principal.points == {point_id}
    assert principal.operates(point_id, "UA80000000000093317")
    # A token from another issuer may spell it without hyphens: still the same point.
    assert principal_from_claims({"sub": "o", "roles": ["operator"], "points": [point_id.hex]}).operates(
        point_id, "UA80000000000093317"
    )


def signed(**claims: object) -> str:
    """A token signed with the right key, with any claims at all."""
    base = {"sub": "x", "exp": int(time.time()) + 60, "iss": "poi-dev", "aud": "poi"}
    return jwt.encode({**base, **claims}, SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    "scope",
    [[""], ["UA"], ["UA8"], ["UA800"], ["UA80", "ua32"], ["UA80 "], ["UA80\n"], ["UA800000000000933170"]],
    ids=["empty", "country", "one-digit", "odd-level", "lower-case", "space", "newline", "too-long"],
)
def test_a_coordinator_scope_off_the_katotth_levels_is_refused(scope: list[str]) -> None:
    with pytest.raises(InvalidToken, match="katotth scope"):
        verifier().verify(signed(roles=["coordinator"], katotth=scope))
    with pytest.raises(ValueError, match="katotth scope"):
        issue_token(SECRET, subject="c", roles=["coordinator"], katotth=scope)


@pytest.mark.parametrize("scope", [["UA80"], ["UA4606"], ["UA4606025"], ["UA4606025001"], ["UA46060250010015970"]])
def test_coordinator_scopes_at_every_level_are_accepted(scope: list[str]) -> None:
    assert verifier().verify(issue_token(SECRET, subject="c", roles=["coordinator"], katotth=scope)).katotth == tuple(
        scope
    )


def test_a_malformed_point_id_is_refused() -> None:
    with pytest.raises(InvalidToken, match="points scope"):
        verifier().verify(signed(roles=["operator"], points=["p-1"]))
    with pytest.raises(ValueError, match="points scope"):
        issue_token(SECRET, subject="o", roles=["operator"], points=[""])


def test_production_keys_verify_asymmetric_tokens_only() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    claims = {"sub": "idp-user", "roles": ["integrator"], "exp": int(time.time()) + 60, "iss": "idp", "aud": "poi"}
    production = TokenVerifier(AuthSettings(public_key=public_pem, issuer="idp"))
    assert production.verify(jwt.encode(claims, private, algorithm="ES256")).roles == {Role.integrator}
    # A token signed with HS256 using the public key as the secret must not pass (algorithm confusion).
    with pytest.raises(InvalidToken):
        production.verify(hs256_signed_with(public_pem.encode(), claims))


def hs256_signed_with(key: bytes, claims: dict[str, object]) -> str:
    """Forge an HS256 token by hand (PyJWT itself refuses to sign with a PEM key)."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = json.dumps({"alg": "HS256", "typ": "JWT"}).encode()
    signing_input = f"{b64(header)}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def test_a_route_verifies_tokens_in_the_event_loop_and_jwks_keys_in_a_worker_thread() -> None:
    """current_principal is a coroutine: no thread hop per request, except where a key may have to be fetched."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from cryptography.hazmat.primitives.asymmetric import ec
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from poi_shared.auth import CurrentPrincipal

    private = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    jwks = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "ES256"}]}).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *args: object) -> None:
            pass

    threads: dict[str, threading.Thread] = {}

    class Watched(TokenVerifier):
        def verify(self, token: str) -> Principal:
            threads["verify"] = threading.current_thread()
            return super().verify(token)

    server = HTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    app = FastAPI()

    @app.get("/who")
    async def who(caller: CurrentPrincipal) -> dict[str, str]:
        threads["route"] = threading.current_thread()
        return {"subject": caller.subject}

    claims = {"sub": "idp-user", "roles": ["admin"], "exp": int(time.time()) + 60, "iss": "idp", "aud": "poi"}
    cases = [
        (
            AuthSettings(jwks_url=f"http://127.0.0.1:{server.server_port}/jwks", issuer="idp"),
            jwt.encode(claims, private, algorithm="ES256", headers={"kid": "k1"}),
            False,
        ),
        (AuthSettings(secret=SecretStr(SECRET)), signed(sub="idp-user", roles=["admin"]), True),
    ]
    try:
        for settings, token, in_event_loop in cases:
            app.state.token_verifier = Watched(settings)
            with TestClient(app) as client:
                response = client.get("/who", headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 200 and response.json() == {"subject": "idp-user"}
                assert (threads["verify"] is threads["route"]) == in_event_loop
                assert client.get("/who").status_code == 401
    finally:
        server.shutdown()


def test_a_verified_token_is_trusted_again_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    checking = verifier()
    token = issue_token(SECRET, subject="op-1", roles=["operator"], ttl_s=600)
    first = checking.verify(token)
    decode = jwt.decode
    decoded: list[str] = []

    def counting_decode(*args: object, **kwargs: object) -> object:
        decoded.append(str(args[0]))
        return decode(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counting_decode)
    assert checking.verify(token) == first and decoded == []
    # Once it is no longer to be trusted as it is (its time in the cache, or the token's life, is over), it is
    # checked again.
    checking._verified[token] = (first, time.time() - 1)
    assert checking.verify(token) == first and decoded == [token]


def test_a_token_that_fails_is_never_kept() -> None:
    checking = verifier()
    expired = issue_token(SECRET, subject="x", roles=["admin"], ttl_s=-3600)
    for _ in range(2):
        with pytest.raises(InvalidToken):
            checking.verify(expired)
    assert checking._verified == {}
