"""OIDC bearer tokens: RFC 7519 claim checks, RFC 7517 key handling, OIDC Core 10.1 rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from rix.auth.oidc import KEYS_UNAVAILABLE, OidcIdentity, OidcVerifier, looks_like_jwt
from rix.config import Settings, SettingsError
from rix.errors import Unauthenticated
from tests.peers.oidc import IdentityProvider, SigningKey


class Clock:
    """A monotonic clock the test moves by hand, for rate limits and cache ages."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey.generate_rsa()


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey.generate_ec()


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    """A key the identity provider does not publish (yet)."""
    return SigningKey.generate_rsa()


@pytest.fixture
def idp(rsa_key: SigningKey, ec_key: SigningKey) -> Iterator[IdentityProvider]:
    with IdentityProvider([rsa_key, ec_key]).running() as provider:
        yield provider


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(idp: IdentityProvider, clock: Clock) -> OidcVerifier:
    return OidcVerifier(
        issuer=idp.issuer, audience=idp.audience, jwks_url=idp.jwks_url, clock=clock
    )


def refusal(verifier: OidcVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(token)
    return refused.value.reason


def segment(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_rs256_token_is_accepted(idp: IdentityProvider, verifier: OidcVerifier) -> None:
    identity = verifier.verify(idp.mint())
    assert isinstance(identity, OidcIdentity)
    assert identity.username == "alice"
    assert identity.subject == "f3c1a2b4-0000-4000-8000-000000000001"
    assert identity.issuer == idp.issuer
    assert identity.expires_at > time.time()
    assert identity.claims["aud"] == idp.audience


def test_es256_token_is_accepted(
    idp: IdentityProvider, verifier: OidcVerifier, ec_key: SigningKey
) -> None:
    assert verifier.verify(idp.mint(key=ec_key)).username == "alice"


def test_audience_may_be_a_list_containing_rix(
    idp: IdentityProvider, verifier: OidcVerifier
) -> None:
    assert verifier.verify(idp.mint(aud=["portal", idp.audience])).username == "alice"


def test_username_comes_from_the_configured_claim(idp: IdentityProvider, clock: Clock) -> None:
    verifier = OidcVerifier(
        issuer=idp.issuer,
        audience=idp.audience,
        jwks_url=idp.jwks_url,
        username_claim="email",
        clock=clock,
    )
    assert verifier.verify(idp.mint(email="alice@trust.example")).username == "alice@trust.example"


def test_expiry_allows_30_seconds_of_clock_skew(
    idp: IdentityProvider, verifier: OidcVerifier
) -> None:
    assert verifier.verify(idp.mint(exp=int(time.time()) - 10)).username == "alice"


def test_expired_token_is_refused(idp: IdentityProvider, verifier: OidcVerifier) -> None:
    assert refusal(verifier, idp.mint(exp=int(time.time()) - 60)) == "token has expired"


def test_token_before_its_nbf_is_refused(idp: IdentityProvider, verifier: OidcVerifier) -> None:
    token = idp.mint(nbf=int(time.time()) + 120)
    assert refusal(verifier, token) == "token is not yet valid"


def test_token_from_another_issuer_is_refused(
    idp: IdentityProvider, verifier: OidcVerifier
) -> None:
    token = idp.mint(iss="https://elsewhere.example/realms/rix")
    assert refusal(verifier, token) == "token is from another issuer"


def test_token_for_another_audience_is_refused(
    idp: IdentityProvider, verifier: OidcVerifier
) -> None:
    assert refusal(verifier, idp.mint(aud=["portal", "pacs"])) == "token is not issued for rix"


@pytest.mark.parametrize("claim", ["exp", "iss", "aud", "sub"])
def test_token_without_a_required_claim_is_refused(
    idp: IdentityProvider, verifier: OidcVerifier, claim: str
) -> None:
    assert refusal(verifier, idp.mint(**{claim: None})) == f"token has no {claim} claim"


def test_token_without_the_username_claim_is_refused(
    idp: IdentityProvider, verifier: OidcVerifier
) -> None:
    token = idp.mint(preferred_username=None)
    assert refusal(verifier, token) == "token has no preferred_username claim"


def test_token_signed_by_an_unpublished_key_is_refused(
    idp: IdentityProvider, verifier: OidcVerifier, other_key: SigningKey
) -> None:
    assert refusal(verifier, idp.mint(key=other_key)) == "token signed by an unknown key"


def test_token_signed_by_another_key_under_a_published_kid_is_refused(
    idp: IdentityProvider, verifier: OidcVerifier, rsa_key: SigningKey, other_key: SigningKey
) -> None:
    token = idp.mint(kid=rsa_key.kid, signing_key=other_key.private)
    assert refusal(verifier, token) == "token signature does not verify"


def test_tampered_payload_is_refused(idp: IdentityProvider, verifier: OidcVerifier) -> None:
    header, _, signature = idp.mint().split(".")
    claims = jwt.decode(idp.mint(), options={"verify_signature": False})
    forged = segment({**claims, "preferred_username": "admin"})
    token = f"{header}.{forged}.{signature}"
    assert refusal(verifier, token) == "token signature does not verify"


def test_alg_none_is_refused_without_asking_the_identity_provider(
    idp: IdentityProvider, verifier: OidcVerifier, rsa_key: SigningKey
) -> None:
    claims = jwt.decode(idp.mint(), options={"verify_signature": False})
    token = f"{segment({'alg': 'none', 'kid': rsa_key.kid})}.{segment(claims)}."
    assert refusal(verifier, token) == "token algorithm not allowed"
    assert idp.fetches == 0


def test_hs256_signed_with_the_public_key_is_refused(
    idp: IdentityProvider, verifier: OidcVerifier, rsa_key: SigningKey
) -> None:
    """Key confusion: the published key used as an HMAC secret must not verify."""
    public_pem = rsa_key.public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = jwt.decode(idp.mint(), options={"verify_signature": False})
    signing_input = f"{segment({'alg': 'HS256', 'kid': rsa_key.kid})}.{segment(claims)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert refusal(verifier, token) == "token algorithm not allowed"


def test_key_is_used_only_with_its_published_algorithm(
    idp: IdentityProvider, verifier: OidcVerifier, rsa_key: SigningKey
) -> None:
    """RFC 7517 4.4: the RSA key is published for RS256, so RS512 under its kid is refused."""
    assert refusal(verifier, idp.mint(alg="RS512")) == "token algorithm not allowed"
    assert refusal(verifier, idp.mint(kid=rsa_key.kid, alg="PS256")) == (
        "token algorithm not allowed"
    )


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512", "PS256"])
def test_rsa_key_without_declared_alg_verifies_each_rsa_algorithm(
    rsa_key: SigningKey, clock: Clock, alg: str
) -> None:
    with IdentityProvider([replace(rsa_key, declare_alg=False)]).running() as idp:
        verifier = OidcVerifier(
            issuer=idp.issuer, audience=idp.audience, jwks_url=idp.jwks_url, clock=clock
        )
        assert verifier.verify(idp.mint(alg=alg)).username == "alice"


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "not-a.jwt!.at-all"])
def test_malformed_token_is_refused(verifier: OidcVerifier, token: str) -> None:
    assert refusal(verifier, token) == "malformed token"


def test_rotated_key_is_fetched_when_a_token_names_it(
    idp: IdentityProvider, verifier: OidcVerifier, clock: Clock, other_key: SigningKey
) -> None:
    verifier.verify(idp.mint())
    idp.rotate(other_key)
    clock.advance(31)
    assert verifier.verify(idp.mint(key=other_key)).username == "alice"
    assert idp.fetches == 2


def test_unknown_kids_refetch_at_most_once_per_interval(
    idp: IdentityProvider, verifier: OidcVerifier, clock: Clock, other_key: SigningKey
) -> None:
    verifier.verify(idp.mint())
    for n in range(20):
        refusal(verifier, idp.mint(key=other_key, kid=f"bogus-{n}"))
        clock.advance(1)
    assert idp.fetches == 1
    clock.advance(11)
    refusal(verifier, idp.mint(key=other_key, kid="bogus-after"))
    assert idp.fetches == 2


def test_concurrent_tokens_with_a_new_kid_share_one_fetch(
    idp: IdentityProvider, verifier: OidcVerifier, clock: Clock, other_key: SigningKey
) -> None:
    verifier.verify(idp.mint())
    idp.rotate(other_key)
    clock.advance(31)
    token = idp.mint(key=other_key)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(verifier.verify(token).username))
        for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["alice"] * 16
    assert idp.fetches == 2


def test_withdrawn_key_stops_verifying_once_the_cache_is_stale(
    idp: IdentityProvider,
    verifier: OidcVerifier,
    clock: Clock,
    rsa_key: SigningKey,
    other_key: SigningKey,
) -> None:
    verifier.verify(idp.mint(key=rsa_key))
    idp.keys = [other_key]
    clock.advance(3601)
    assert refusal(verifier, idp.mint(key=rsa_key)) == "token signed by an unknown key"


def test_cached_keys_survive_an_identity_provider_outage(
    idp: IdentityProvider, verifier: OidcVerifier, clock: Clock
) -> None:
    verifier.verify(idp.mint())
    idp.stop()
    clock.advance(3601)
    assert verifier.verify(idp.mint()).username == "alice"


def test_unreachable_identity_provider_refuses_tokens(
    idp: IdentityProvider, verifier: OidcVerifier
) -> None:
    idp.stop()
    assert refusal(verifier, idp.mint()) == KEYS_UNAVAILABLE


def test_identity_provider_error_answer_refuses_tokens(
    idp: IdentityProvider, verifier: OidcVerifier
) -> None:
    idp.status = 503
    assert refusal(verifier, idp.mint()) == KEYS_UNAVAILABLE


def test_key_set_without_usable_keys_refuses_tokens(
    idp: IdentityProvider, verifier: OidcVerifier
) -> None:
    token = idp.mint()
    idp.keys = []
    assert refusal(verifier, token) == KEYS_UNAVAILABLE


def test_failed_fetch_is_retried_after_the_interval(
    idp: IdentityProvider, verifier: OidcVerifier, clock: Clock
) -> None:
    idp.status = 503
    assert refusal(verifier, idp.mint()) == KEYS_UNAVAILABLE
    idp.status = 200
    assert refusal(verifier, idp.mint()) == KEYS_UNAVAILABLE
    clock.advance(30)
    assert verifier.verify(idp.mint()).username == "alice"
    assert idp.fetches == 2


def test_jwks_over_plain_http_is_refused_off_loopback() -> None:
    with pytest.raises(SettingsError):
        OidcVerifier(issuer="i", audience="a", jwks_url="http://idp.example/certs")


def test_verifier_is_built_from_settings() -> None:
    settings = Settings(
        oidc_issuer="https://idp.example",
        oidc_audience="rix",
        oidc_jwks_url="https://idp.example/certs",
        oidc_username_claim="email",
    )
    verifier = OidcVerifier.from_settings(settings)
    assert (verifier.issuer, verifier.audience, verifier.username_claim) == (
        "https://idp.example",
        "rix",
        "email",
    )


def test_jwts_are_told_apart_from_rix_tokens(idp: IdentityProvider) -> None:
    assert looks_like_jwt(idp.mint())
    assert not looks_like_jwt("rix_" + "A" * 43)
    assert not looks_like_jwt("a.b")
    assert not looks_like_jwt("a.b.c.d")
