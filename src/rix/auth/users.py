"""Local accounts: a user belongs to a trust (or to the region) and holds roles.

Passwords are stored as argon2id hashes (RFC 9106) and checked in constant time by
argon2-cffi; a user authenticated by OpenID Connect or an API token needs no password.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Row, insert, select, update

from rix.errors import Conflict, NotFound
from rix.index.schema import trusts, users
from rix.region.trusts import Trust, get_trust


class Role(StrEnum):
    CLINICIAN = "clinician"
    RADIOLOGIST = "radiologist"
    RADIOGRAPHER = "radiographer"
    TRUST_ADMIN = "trust-admin"
    REGION_ADMIN = "region-admin"
    AUDITOR = "auditor"


_hasher = PasswordHasher()


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    pk: int
    username: str
    display_name: str
    trust: Trust | None
    roles: frozenset[Role]
    active: bool
    email: str = ""  # where rix writes to them: a share locked, an opinion received


def parse_roles(text: str) -> frozenset[Role]:
    try:
        return frozenset(Role(r.strip()) for r in text.replace(" ", ",").split(",") if r.strip())
    except ValueError as exc:
        raise Conflict(f"unknown role; roles are {', '.join(r.value for r in Role)}") from exc


def _user(row: Row[Any]) -> User:
    trust = None
    if row.trust_pk is not None:
        trust = Trust(pk=row.trust_pk, code=row.code, name=row.name, issuer=row.issuer)
    return User(
        pk=row.id,
        username=row.username,
        display_name=row.display_name,
        trust=trust,
        roles=parse_roles(row.roles),
        active=bool(row.active),
        email=row.email,
    )


def _select() -> Any:
    return select(users, trusts.c.code, trusts.c.name, trusts.c.issuer).outerjoin(
        trusts, trusts.c.id == users.c.trust_pk
    )


def add_user(
    conn: Connection,
    *,
    username: str,
    roles: frozenset[Role],
    trust: str = "",
    display_name: str = "",
    password: str = "",
    email: str = "",
) -> User:
    """Create or update a user. Trust roles need a trust; region roles may have none.
    An update keeps the email address when none is given."""
    username = username.strip()
    if not username or len(username) > 128:
        raise Conflict("a user name is 1 to 128 characters")
    trust_pk = get_trust(conn, trust).pk if trust else None
    needs_trust = roles - {Role.REGION_ADMIN, Role.AUDITOR}
    if needs_trust and trust_pk is None:
        raise Conflict(f"roles {sorted(r.value for r in needs_trust)} need a trust")
    values: dict[str, Any] = {
        "display_name": display_name or username,
        "trust_pk": trust_pk,
        "roles": ",".join(sorted(r.value for r in roles)),
        "active": True,
    }
    if password:
        values["password_hash"] = _hasher.hash(password)
    if email:
        values["email"] = check_email(email)
    found = conn.execute(select(users.c.id).where(users.c.username == username)).scalar()
    if found is None:
        conn.execute(insert(users).values(username=username, created_at=time.time(), **values))
    else:
        conn.execute(update(users).where(users.c.id == found).values(**values))
    return get_user(conn, username)


def check_email(address: str) -> str:
    """A plausible single address: mail headers are built from it, so no line breaks,
    spaces or lists get through."""
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if (
        not at
        or not local
        or "." not in domain
        or len(address) > 254
        or any(c.isspace() or c in ',;<>"' for c in address)
    ):
        raise Conflict(f"{address[:80]!r} is not an email address")
    return address


def get_user(conn: Connection, username: str) -> User:
    row = conn.execute(_select().where(users.c.username == username)).first()
    if row is None:
        raise NotFound(f"no user {username!r}")
    return _user(row)


def user_by_pk(conn: Connection, pk: int) -> User | None:
    row = conn.execute(_select().where(users.c.id == pk)).first()
    return None if row is None else _user(row)


def all_users(conn: Connection) -> list[User]:
    return [_user(r) for r in conn.execute(_select().order_by(users.c.username))]


def set_active(conn: Connection, username: str, active: bool) -> None:
    user = get_user(conn, username)
    conn.execute(update(users).where(users.c.id == user.pk).values(active=active))


def check_password(conn: Connection, username: str, password: str) -> User | None:
    """The active user whose password this is, or None (unknown user, wrong password)."""
    row = conn.execute(_select().where(users.c.username == username.strip())).first()
    if row is None or not row.active or not row.password_hash:
        _hasher.hash(password)  # the same work either way: no user-name oracle by timing
        return None
    try:
        _hasher.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(row.password_hash):
        conn.execute(
            update(users).where(users.c.id == row.id).values(password_hash=_hasher.hash(password))
        )
    return _user(row)
