"""Trusts, their sites and the sharing agreements between them.

A trust is an NHS organisation with its own hospital numbers: ``issuer`` is the Issuer of
Patient ID (PS3.3 C.7.1.1) that scopes them. An agreement lets two trusts' staff see each
other's images, subject to a relationship or break-glass (``rix.access``); it is stored
once per pair and shares both ways.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Connection,
    Row,
    and_,
    delete,
    false,
    insert,
    select,
    update,
)

from rix.errors import Conflict, NotFound
from rix.index.schema import agreements, sites, trusts


@dataclass(frozen=True, slots=True, kw_only=True)
class Trust:
    pk: int
    code: str
    name: str
    issuer: str
    pacs_ae: str = ""  # where transfers and prefetched priors go (rix.routing)
    shares_without_pin: bool = False  # its staff may share a link with no PIN (rix.sharing)


@dataclass(frozen=True, slots=True, kw_only=True)
class Agreement:
    trust_a: str
    trust_b: str
    description: str
    names_before_claim: bool = True  # the shared worklist names the partner's patients


def _trust(row: Row[Any]) -> Trust:
    return Trust(
        pk=row.id,
        code=row.code,
        name=row.name,
        issuer=row.issuer,
        pacs_ae=row.pacs_ae,
        shares_without_pin=bool(row.shares_without_pin),
    )


def add_trust(
    conn: Connection, *, code: str, name: str, issuer: str = "", pacs_ae: str | None = None
) -> Trust:
    """Add a trust, or update one: its issuer defaults to its code, and on an update what
    is not given (issuer '', PACS None) stays as it was, since every hospital number of
    the trust is scoped by its issuer."""
    code = code.strip().upper()
    if not code or len(code) > 16:
        raise Conflict("a trust code is 1 to 16 characters")
    current = conn.execute(select(trusts).where(trusts.c.code == code)).first()
    if current is not None:
        issuer = issuer.strip() or current.issuer
        pacs_ae = current.pacs_ae if pacs_ae is None else pacs_ae
    issuer = (issuer or code).strip()
    other = conn.execute(
        select(trusts.c.code).where(trusts.c.issuer == issuer, trusts.c.code != code)
    ).scalar()
    if other is not None:
        raise Conflict(f"issuer {issuer!r} already belongs to trust {other}")
    values = {"name": name, "issuer": issuer, "pacs_ae": (pacs_ae or "").strip().upper()}
    if current is None:
        conn.execute(insert(trusts).values(code=code, **values))
    else:
        conn.execute(update(trusts).where(trusts.c.id == current.id).values(**values))
    return get_trust(conn, code)


def get_trust(conn: Connection, code: str) -> Trust:
    row = conn.execute(select(trusts).where(trusts.c.code == code.strip().upper())).first()
    if row is None:
        raise NotFound(f"no trust {code!r}")
    return _trust(row)


def set_shares_without_pin(conn: Connection, code: str, allowed: bool) -> Trust:
    """Whether the trust's staff may share a link with no PIN (default: no)."""
    trust = get_trust(conn, code)
    conn.execute(update(trusts).where(trusts.c.id == trust.pk).values(shares_without_pin=allowed))
    return get_trust(conn, code)


def all_trusts(conn: Connection) -> list[Trust]:
    return [_trust(row) for row in conn.execute(select(trusts).order_by(trusts.c.code))]


def add_site(conn: Connection, *, trust: str, code: str, name: str) -> None:
    trust_pk = get_trust(conn, trust).pk
    code = code.strip().upper()
    found = conn.execute(
        select(sites.c.id).where(sites.c.trust_pk == trust_pk, sites.c.code == code)
    ).scalar()
    if found is None:
        conn.execute(insert(sites).values(trust_pk=trust_pk, code=code, name=name))
    else:
        conn.execute(update(sites).where(sites.c.id == found).values(name=name))


def sites_of(conn: Connection, trust: str) -> list[tuple[str, str]]:
    trust_pk = get_trust(conn, trust).pk
    rows = conn.execute(
        select(sites.c.code, sites.c.name)
        .where(sites.c.trust_pk == trust_pk)
        .order_by(sites.c.code)
    )
    return [(r.code, r.name) for r in rows]


def _pair(conn: Connection, one: str, other: str) -> tuple[int, int]:
    a, b = get_trust(conn, one).pk, get_trust(conn, other).pk
    if a == b:
        raise Conflict("an agreement is between two different trusts")
    return (a, b) if a < b else (b, a)


def add_agreement(
    conn: Connection,
    one: str,
    other: str,
    description: str = "",
    *,
    names_before_claim: bool | None = None,
) -> bool:
    """Record a sharing agreement; False when the two trusts already had one.
    ``names_before_claim``: whether the shared reporting worklist names each trust's
    patients to the other's radiologists before they claim a study (None: yes for a new
    agreement, unchanged for one in force)."""
    a, b = _pair(conn, one, other)
    found = conn.execute(
        select(agreements.c.id).where(agreements.c.trust_a == a, agreements.c.trust_b == b)
    ).scalar()
    if found is not None:
        if names_before_claim is not None:
            conn.execute(
                update(agreements)
                .where(agreements.c.id == found)
                .values(names_before_claim=names_before_claim)
            )
        return False
    conn.execute(
        insert(agreements).values(
            trust_a=a,
            trust_b=b,
            description=description,
            created_at=time.time(),
            names_before_claim=True if names_before_claim is None else names_before_claim,
        )
    )
    return True


def remove_agreement(conn: Connection, one: str, other: str) -> bool:
    a, b = _pair(conn, one, other)
    result = conn.execute(
        delete(agreements).where(and_(agreements.c.trust_a == a, agreements.c.trust_b == b))
    )
    return bool(result.rowcount)


def all_agreements(conn: Connection) -> list[Agreement]:
    a, b = trusts.alias("a"), trusts.alias("b")
    rows = conn.execute(
        select(
            a.c.code.label("one"),
            b.c.code.label("other"),
            agreements.c.description,
            agreements.c.names_before_claim,
        )
        .join(a, a.c.id == agreements.c.trust_a)
        .join(b, b.c.id == agreements.c.trust_b)
        .order_by(a.c.code, b.c.code)
    )
    return [
        Agreement(
            trust_a=r.one,
            trust_b=r.other,
            description=r.description,
            names_before_claim=bool(r.names_before_claim),
        )
        for r in rows
    ]


def partners_hiding_names(trust_pk: int) -> CompoundSelect[Any]:
    """SQL: the partners of ``trust_pk`` whose agreement keeps patients' names off the
    shared worklist until a claim (a subquery for ``rix.access``)."""
    hidden = agreements.c.names_before_claim.is_(false())
    return (
        select(agreements.c.trust_b)
        .where(agreements.c.trust_a == trust_pk, hidden)
        .union_all(select(agreements.c.trust_a).where(agreements.c.trust_b == trust_pk, hidden))
    )


def partners(trust_pk: int) -> CompoundSelect[Any]:
    """SQL: the trusts ``trust_pk`` shares with (a subquery for ``rix.access``)."""
    return (
        select(agreements.c.trust_b)
        .where(agreements.c.trust_a == trust_pk)
        .union_all(select(agreements.c.trust_a).where(agreements.c.trust_b == trust_pk))
    )
