"""A share as the index keeps it: which studies of whose, for whom, until when, whether its
link still opens, and the opinions sent back. Every other sharing module reads shares here.

Secrets (the link's token, a session's cookie) are 256 random bits stored only as their
SHA-256 (``digest``): the index never holds what would open a link.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row, select

from rix.access import Principal
from rix.errors import NotFound
from rix.index.schema import trusts, users
from rix.index.workflow_tables import share_opinions, share_studies, shares
from rix.region.trusts import Trust

TOKEN_BYTES = 32  # 256 bits


@dataclass(frozen=True, slots=True, kw_only=True)
class Opinion:
    pk: int
    study_uid: str
    text: str
    key_images: list[str]
    sr_instance_uid: str
    created_at: float
    seen_at: float | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Opinion:
        return cls(
            pk=row.id,
            study_uid=row.study_uid,
            text=row.text,
            key_images=json.loads(row.key_images),
            sr_instance_uid=row.sr_instance_uid or "",
            created_at=row.created_at,
            seen_at=row.seen_at,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Share:
    pk: int
    owner_pk: int
    owner_name: str
    owner_email: str
    trust_pk: int
    trust_code: str
    trust_name: str
    recipient_name: str
    recipient_email: str
    purpose: str
    may_download: bool
    has_pin: bool
    pin_failures: int
    created_at: float
    expires_at: float
    locked_at: float | None
    revoked_at: float | None
    revoked_by: str
    study_uids: tuple[str, ...] = ()
    opinions: tuple[Opinion, ...] = field(default=())

    def state(self, now: float | None = None) -> str:
        """open, expired, revoked or locked: what the link does now."""
        if self.revoked_at is not None:
            return "revoked"
        if self.locked_at is not None:
            return "locked"
        if self.expires_at <= (time.time() if now is None else now):
            return "expired"
        return "open"

    def principal(self, source: str) -> Principal:
        """Who the link's holder is to the access policy: the share, of its trust."""
        trust = Trust(pk=self.trust_pk, code=self.trust_code, name=self.trust_name, issuer="")
        return Principal.of_share(self.pk, trust, self.may_download, source)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def select_shares() -> Any:
    """Shares with their owner's name and email and their trust's code and name."""
    return (
        select(
            shares,
            users.c.display_name.label("owner_name"),
            users.c.email.label("owner_email"),
            trusts.c.code.label("trust_code"),
            trusts.c.name.label("trust_name"),
        )
        .join(users, users.c.id == shares.c.owner_pk)
        .join(trusts, trusts.c.id == shares.c.trust_pk)
    )


def from_row(
    conn: Connection, row: Row[Any], *, with_opinions: bool = False, with_studies: bool = True
) -> Share:
    """The share of a ``select_shares()`` row, its studies and opinions read when asked."""
    uids = (
        ()
        if not with_studies
        else conn.execute(
            select(share_studies.c.study_uid)
            .where(share_studies.c.share_pk == row.id)
            .order_by(share_studies.c.study_uid)
        ).scalars()
    )
    return Share(
        pk=row.id,
        owner_pk=row.owner_pk,
        owner_name=row.owner_name,
        owner_email=row.owner_email,
        trust_pk=row.trust_pk,
        trust_code=row.trust_code,
        trust_name=row.trust_name,
        recipient_name=row.recipient_name,
        recipient_email=row.recipient_email,
        purpose=row.purpose,
        may_download=bool(row.may_download),
        has_pin=bool(row.pin_hash),
        pin_failures=row.pin_failures,
        created_at=row.created_at,
        expires_at=row.expires_at,
        locked_at=row.locked_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
        study_uids=tuple(uids),
        opinions=tuple(opinions_of(conn, row.id)) if with_opinions else (),
    )


def get(conn: Connection, share_pk: int, *, with_opinions: bool = False) -> Share:
    row = conn.execute(select_shares().where(shares.c.id == share_pk)).first()
    if row is None:
        raise NotFound("no such share")
    return from_row(conn, row, with_opinions=with_opinions)


def opinions_of(conn: Connection, share_pk: int) -> list[Opinion]:
    rows = conn.execute(
        select(share_opinions)
        .where(share_opinions.c.share_pk == share_pk)
        .order_by(share_opinions.c.id)
    ).all()
    return [Opinion.from_row(r) for r in rows]
