"""Credentials to a user: the one place HTTP and DICOM turn a secret into a ``User``.

Accepted: a password (login page, DICOM User Identity type 2), an API token or login
session (``rix.auth.credentials``), and an OpenID Connect bearer token from the
configured identity provider, which names a rix user (whose trust and roles apply).
Every failure is the same ``Unauthenticated`` so no answer tells which part was wrong.
"""

from __future__ import annotations

import time
from functools import lru_cache
from threading import Lock

from sqlalchemy import Engine

from rix.auth import credentials, users
from rix.auth.credentials import CredentialKind
from rix.auth.oidc import OidcIdentity, OidcVerifier
from rix.auth.users import User
from rix.config import Settings
from rix.errors import NotFound, Unauthenticated

REFUSED = "authentication failed"


def by_password(engine: Engine, username: str, password: str) -> User:
    with engine.begin() as conn:  # may rehash an outdated hash
        user = users.check_password(conn, username, password)
    if user is None:
        raise Unauthenticated(REFUSED)
    return user


class _Recent:
    """Secrets verified in the last ``TTL`` seconds: a viewer sends hundreds of requests a
    minute with one token, and each would otherwise cost a look-up. A revocation made in
    this process (``forget``) applies at once; one made elsewhere within ``TTL``."""

    TTL = 10.0

    def __init__(self) -> None:
        self._users: dict[tuple[str, str], tuple[User, float]] = {}
        self._lock = Lock()

    def get(self, secret: str, kind: CredentialKind) -> User | None:
        key = (credentials.digest(secret), kind.value)
        with self._lock:
            found = self._users.get(key)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def put(self, secret: str, kind: CredentialKind, user: User) -> None:
        key = (credentials.digest(secret), kind.value)
        with self._lock:
            if len(self._users) > 10_000:
                self._users.clear()
            self._users[key] = (user, time.monotonic() + self.TTL)

    def forget(self) -> None:
        with self._lock:
            self._users.clear()


RECENT = _Recent()


def by_secret(engine: Engine, secret: str, kind: CredentialKind) -> User:
    known = RECENT.get(secret, kind)
    if known is not None:
        return known
    with engine.connect() as conn:
        user_pk = credentials.user_of(conn, secret, kind)
        user = None if user_pk is None else users.user_by_pk(conn, user_pk)
    if user is None or not user.active:
        raise Unauthenticated(REFUSED)
    RECENT.put(secret, kind, user)
    return user


def by_bearer(engine: Engine, settings: Settings, token: str) -> User:
    """An API token (``rix_...``) or, when OIDC is configured, a JWT from the IdP."""
    if token.startswith(credentials.PREFIX):
        return by_secret(engine, token, CredentialKind.API_TOKEN)
    if not settings.oidc_issuer:
        raise Unauthenticated(REFUSED)
    identity = oidc_verifier(
        settings.oidc_issuer,
        settings.oidc_audience,
        settings.oidc_jwks_url,
        settings.oidc_username_claim,
    ).verify(token)
    return by_oidc_identity(engine, identity)


def by_oidc_identity(engine: Engine, identity: OidcIdentity) -> User:
    """The active rix user a verified OIDC token names (bearer JWT or browser sign-in's ID
    token): the identity provider authenticates, rix authorises."""
    with engine.connect() as conn:
        try:
            user = users.get_user(conn, identity.username)
        except NotFound:
            raise Unauthenticated("the identity provider's user is not a rix user") from None
    if not user.active:
        raise Unauthenticated(REFUSED)
    return user


@lru_cache(maxsize=4)
def oidc_verifier(issuer: str, audience: str, jwks_url: str, claim: str) -> OidcVerifier:
    """One verifier per configuration per process: it caches the IdP's keys."""
    return OidcVerifier(issuer=issuer, audience=audience, jwks_url=jwks_url, username_claim=claim)
