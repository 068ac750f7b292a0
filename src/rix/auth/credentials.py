"""API tokens and login sessions: random secrets of which only a SHA-256 is stored.

A 256-bit random secret needs no slow hash (unlike a password nobody can guess it by
trying), so the stored SHA-256 is an indexed look-up per request, and a copy of the
table lets nobody in. Tokens start with ``rix_`` so they are told apart from OIDC JWTs
and found by secret scanners.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from enum import StrEnum

from sqlalchemy import Connection, insert, select, update

from rix.index.schema import credentials

PREFIX = "rix_"


class CredentialKind(StrEnum):
    API_TOKEN = "api-token"
    SESSION = "session"


def digest(secret: str) -> str:
    """What is stored of a secret, and what it is looked up by."""
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(
    conn: Connection,
    *,
    user_pk: int,
    kind: CredentialKind,
    label: str = "",
    lifetime: float | None = None,
) -> str:
    """A new secret for ``user_pk``; it is shown once and never stored."""
    secret = PREFIX + secrets.token_urlsafe(32)
    now = time.time()
    conn.execute(
        insert(credentials).values(
            user_pk=user_pk,
            kind=kind.value,
            secret_hash=digest(secret),
            label=label,
            created_at=now,
            expires_at=None if lifetime is None else now + lifetime,
        )
    )
    return secret


def user_of(conn: Connection, secret: str, kind: CredentialKind) -> int | None:
    """The user a live (unexpired, unrevoked) secret belongs to, or None."""
    if not secret.startswith(PREFIX):
        return None
    row = conn.execute(
        select(credentials.c.user_pk, credentials.c.expires_at, credentials.c.revoked_at).where(
            credentials.c.secret_hash == digest(secret), credentials.c.kind == kind.value
        )
    ).first()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at < time.time():
        return None
    return int(row.user_pk)


def revoke(conn: Connection, secret: str) -> bool:
    result = conn.execute(
        update(credentials)
        .where(credentials.c.secret_hash == digest(secret), credentials.c.revoked_at.is_(None))
        .values(revoked_at=time.time())
    )
    return bool(result.rowcount)


def revoke_all(conn: Connection, user_pk: int, kind: CredentialKind) -> int:
    result = conn.execute(
        update(credentials)
        .where(
            credentials.c.user_pk == user_pk,
            credentials.c.kind == kind.value,
            credentials.c.revoked_at.is_(None),
        )
        .values(revoked_at=time.time())
    )
    return int(result.rowcount)
