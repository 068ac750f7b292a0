"""OpenID Connect bearer tokens: a signed JWT from the region's identity provider.

A token proves who the caller is only if its signature verifies against a key the issuer
publishes (OIDC Core 10.1, RFC 7517) and its claims say it was issued by that issuer, for
rix, and is current (RFC 7519 4.1, OIDC Core 3.1.3.7). The configured username claim then
names the rix user the token stands for; roles and trust come from that user, never from
the token.

Every refusal is :class:`rix.errors.Unauthenticated` with a reason fit for a 401 answer and
a log line: it never contains the token or any claim value.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.client import HTTPException
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import jwt
import structlog

from rix.config import Settings, SettingsError, is_loopback
from rix.errors import Unauthenticated

log = structlog.get_logger(__name__)

# Asymmetric only. "none" (RFC 7518 3.6) proves nothing, and accepting HS* alongside
# public keys lets a forger sign with the published key as an HMAC secret (key confusion).
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384")

_ALGORITHMS_FOR_KEY: dict[tuple[str | None, str | None], tuple[str, ...]] = {
    ("RSA", None): ("RS256", "RS384", "RS512", "PS256"),
    ("EC", "P-256"): ("ES256",),
    ("EC", "P-384"): ("ES384",),
}

# RFC 7515 7.1 compact serialisation; the signature is empty only for alg "none",
# which is still a JWT and is refused by the verifier rather than mistaken for a rix token.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

LEEWAY_SECONDS = 30.0
KEYS_UNAVAILABLE = "identity provider keys unavailable"
_MAX_JWKS_BYTES = 1 << 20

_REFUSALS: dict[type[jwt.PyJWTError], str] = {
    jwt.InvalidSignatureError: "token signature does not verify",
    jwt.ExpiredSignatureError: "token has expired",
    jwt.ImmatureSignatureError: "token is not yet valid",
    jwt.InvalidIssuerError: "token is from another issuer",
    jwt.InvalidAudienceError: "token is not issued for rix",
    jwt.InvalidAlgorithmError: "token algorithm not allowed",
    jwt.InvalidKeyError: "token signature does not verify",
    jwt.DecodeError: "malformed token",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class OidcIdentity:
    """Who a verified token says the caller is.

    ``username`` is the configured claim (the rix user); ``(issuer, subject)`` is the
    identity provider's stable key for the person (OIDC Core 5.7: only that pair is unique
    and never reassigned). ``expires_at`` is the token's ``exp`` in seconds since the epoch.
    """

    username: str
    subject: str
    issuer: str
    expires_at: float
    claims: Mapping[str, Any] = field(hash=False)


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer token has the JWS compact form (three base64url segments).

    Lets the HTTP layer send JWTs here and rix's own opaque ``rix_`` tokens (which have no
    dots) to the credential table, without trying both.
    """
    return _COMPACT_JWS.fullmatch(token) is not None


@dataclass(frozen=True, slots=True)
class _KeySet:
    """One fetched JWKS: a verification key per (kid, algorithm) it may be used with."""

    keys: Mapping[tuple[str | None, str], jwt.PyJWK]
    kids: frozenset[str | None]
    fetched_at: float

    def knows(self, kid: str | None) -> bool:
        # OIDC Core 10.1: kid may be left out only when the set holds a single key.
        return kid in self.kids or (kid is None and len(self.kids) == 1)

    def key(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        if kid is None and len(self.kids) == 1:
            (kid,) = self.kids
        return self.keys.get((kid, alg))


class OidcVerifier:
    """Verifies bearer tokens against one issuer's published keys.

    The JWKS is fetched on first use and cached. A token naming an unknown ``kid`` triggers
    a refetch (the issuer rotated its keys, OIDC Core 10.1.1), and so does a cache older than
    ``max_age`` (a key the issuer withdrew stops being trusted). Fetches are at most one per
    ``refetch_interval`` seconds however many tokens arrive, so a flood of made-up kids
    cannot be turned against the identity provider. Safe to share between threads: readers
    see a whole key set, and one lock serialises fetches.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str,
        username_claim: str = "preferred_username",
        refetch_interval: float = 30.0,
        max_age: float = 3600.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        url = urlsplit(jwks_url)
        loopback = url.scheme == "http" and is_loopback(url.hostname or "")
        # Plain HTTP would let anyone on the path substitute keys and forge every identity.
        if url.scheme != "https" and not loopback:
            raise SettingsError("oidc_jwks_url must be https:// (http:// only on loopback)")
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self.username_claim = username_claim
        self._refetch_interval = refetch_interval
        self._max_age = max_age
        self._timeout = timeout
        self._clock = clock
        self._fetch_lock = threading.Lock()
        self._keys: _KeySet | None = None
        self._last_attempt: float | None = None
        self._last_attempt_failed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcVerifier:
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            jwks_url=settings.oidc_jwks_url,
            username_claim=settings.oidc_username_claim,
        )

    def verify(self, token: str) -> OidcIdentity:
        """The identity a token proves, or :class:`Unauthenticated` saying why not.

        Checks the JWS form and header, the algorithm (allow-list, and fitting the key),
        the signature, then ``exp``/``nbf`` with 30 s leeway, ``iss`` exact match, ``aud``
        containing rix (RFC 7519 4.1.3; a list is allowed), ``sub``, and the username claim.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("malformed token") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALLOWED_ALGORITHMS:
            raise Unauthenticated("token algorithm not allowed")
        # The header's jku, x5u and jwk are never followed: keys come from jwks_url only.
        key = self._signing_key(kid, alg)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token has no {exc.claim} claim") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(_refusal(exc)) from exc
        return self._identity(claims)

    def _identity(self, claims: dict[str, Any]) -> OidcIdentity:
        username = claims.get(self.username_claim)
        if not isinstance(username, str) or not username:
            raise Unauthenticated(f"token has no {self.username_claim} claim")
        return OidcIdentity(
            username=username,
            subject=claims["sub"],
            issuer=claims["iss"],
            expires_at=float(claims["exp"]),
            claims=MappingProxyType(claims),
        )

    def _signing_key(self, kid: Any, alg: str) -> jwt.PyJWK:
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("malformed token")
        keys = self._keys_knowing(kid)
        if not keys.knows(kid):
            raise Unauthenticated("token signed by an unknown key")
        key = keys.key(kid, alg)
        if key is None:
            # RFC 7517 4.4: a key is used only with the algorithm it is published for.
            raise Unauthenticated("token algorithm not allowed")
        return key

    def _keys_knowing(self, kid: str | None) -> _KeySet:
        """The cached key set, refetched first if it lacks ``kid`` or is stale."""
        keys = self._keys
        if keys is not None and keys.knows(kid) and not self._stale(keys):
            return keys
        with self._fetch_lock:
            keys = self._keys  # another thread may have fetched while this one waited
            if keys is not None and keys.knows(kid) and not self._stale(keys):
                return keys
            now = self._clock()
            if self._last_attempt is None or now - self._last_attempt >= self._refetch_interval:
                self._last_attempt = now
                self._last_attempt_failed = not self._refetch(now)
            keys, failed = self._keys, self._last_attempt_failed
        if keys is None or (failed and not keys.knows(kid)):
            raise Unauthenticated(KEYS_UNAVAILABLE)
        # A stale set whose refresh failed still serves: an outage must not log everyone out.
        return keys

    def _stale(self, keys: _KeySet) -> bool:
        return self._clock() - keys.fetched_at >= self._max_age

    def _refetch(self, now: float) -> bool:
        try:
            document = self._fetch_jwks()
            self._keys = _key_set(document, now)
        except (OSError, HTTPException, ValueError, RecursionError, jwt.PyJWTError) as exc:
            log.warning("oidc.jwks_unavailable", url=self.jwks_url, error=type(exc).__name__)
            return False
        log.info("oidc.jwks_fetched", url=self.jwks_url, keys=len(self._keys.kids))
        return True

    def _fetch_jwks(self) -> Any:
        request = urllib.request.Request(self.jwks_url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=self._timeout) as response:
            body = response.read(_MAX_JWKS_BYTES + 1)
        if len(body) > _MAX_JWKS_BYTES:
            raise ValueError("JWKS document too large")
        return json.loads(body)


def _key_set(document: Any, fetched_at: float) -> _KeySet:
    """Usable signing keys of a JWKS document (RFC 7517 5); others are skipped.

    A key without ``alg`` is bound to each allowed algorithm its type fits (RSA: RS*/PS256;
    EC: the ES* of its curve), since PyJWT fixes one algorithm per key object.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set")
    keys: dict[tuple[str | None, str], jwt.PyJWK] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or not _for_signing(jwk):
            continue
        for alg in _algorithms_for(jwk):
            try:
                keys[(jwk.get("kid"), alg)] = jwt.PyJWK(jwk, algorithm=alg)
            except jwt.PyJWTError:
                continue
    if not keys:
        raise jwt.PyJWKSetError("no usable signing keys")
    return _KeySet(keys=keys, kids=frozenset(kid for kid, _ in keys), fetched_at=fetched_at)


def _for_signing(jwk: dict[str, Any]) -> bool:
    """RFC 7517 4.2 and 4.3: skip keys published for encryption only."""
    use, ops = jwk.get("use"), jwk.get("key_ops")
    return use in (None, "sig") and (ops is None or "verify" in ops)


def _algorithms_for(jwk: dict[str, Any]) -> tuple[str, ...]:
    declared = jwk.get("alg")
    if declared is not None:
        return (declared,) if declared in ALLOWED_ALGORITHMS else ()
    curve = jwk.get("crv") if jwk.get("kty") == "EC" else None
    return _ALGORITHMS_FOR_KEY.get((jwk.get("kty"), curve), ())


def _refusal(exc: jwt.PyJWTError) -> str:
    """A fixed reason per PyJWT failure; PyJWT's own messages are not shown to callers."""
    for kind in type(exc).__mro__:
        if kind in _REFUSALS:
            return _REFUSALS[kind]
    return "invalid token"
