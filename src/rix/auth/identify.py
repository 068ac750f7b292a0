"""Credentials to a user: the one place HTTP and DICOM turn a secret into a ``User``.

Accepted: a password (login page, DICOM User Identity type 2), an API token or login
session (``rix.auth.credentials``), and an OpenID Connect bearer token from the
configured identity provider, which names a rix user (whose trust and roles apply).
Every failure is the same ``Unauthenticated`` so no answer tells which part was wrong.
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine

from rix.auth import credentials, users
from rix.auth.credentials import CredentialKind
from rix.auth.oidc import OidcVerifier
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


def by_secret(engine: Engine, secret: str, kind: CredentialKind) -> User:
    with engine.connect() as conn:
        user_pk = credentials.user_of(conn, secret, kind)
        user = None if user_pk is None else users.user_by_pk(conn, user_pk)
    if user is None or not user.active:
        raise Unauthenticated(REFUSED)
    return user


def by_bearer(engine: Engine, settings: Settings, token: str) -> User:
    """An API token (``rix_...``) or, when OIDC is configured, a JWT from the IdP."""
    if token.startswith(credentials.PREFIX):
        return by_secret(engine, token, CredentialKind.API_TOKEN)
    if not settings.oidc_issuer:
        raise Unauthenticated(REFUSED)
    identity = _verifier(
        settings.oidc_issuer,
        settings.oidc_audience,
        settings.oidc_jwks_url,
        settings.oidc_username_claim,
    ).verify(token)
    with engine.connect() as conn:
        try:
            user = users.get_user(conn, identity.username)
        except NotFound:
            raise Unauthenticated("the identity provider's user is not a rix user") from None
    if not user.active:
        raise Unauthenticated(REFUSED)
    return user


@lru_cache(maxsize=4)
def _verifier(issuer: str, audience: str, jwks_url: str, claim: str) -> OidcVerifier:
    """One verifier per configuration per process: it caches the IdP's keys."""
    return OidcVerifier(issuer=issuer, audience=audience, jwks_url=jwks_url, username_claim=claim)
