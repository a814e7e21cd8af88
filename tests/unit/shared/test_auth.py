"""Tokens are verified strictly and scopes decide who may act where."""

import time

import jwt
import pytest
from pydantic import SecretStr

from poi_shared.auth import InvalidToken, Principal, Role, TokenVerifier, issue_token
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
    operator = Principal("o", frozenset({Role.operator}), points=frozenset({"p-1"}))
    assert operator.operates("p-1", "UA80000000000093317")
    assert not operator.operates("p-2", "UA80000000000093317")
    coordinator = Principal("c", frozenset({Role.coordinator}), katotth=("UA80",))
    assert coordinator.operates("p-2", "UA80000000000093317")


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
