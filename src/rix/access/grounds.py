"""What opens a partner trust's images to a user (the grounds ``scope`` reads): an order,
encounter or referral for the patient at the user's trust, or a declared break-glass.

Each is a row the scope's query reads itself, so recording or ending one applies to the
next query (``rix.access.scope``).
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, false, or_, select

from rix.access import BREAK_GLASS_ROLES, IMAGE_ROLES, Principal, PrincipalKind
from rix.access.checks import require_role
from rix.errors import AccessDenied, Conflict
from rix.index.schema import break_glass, relationships
from rix.region import mpi
from rix.region.trusts import Trust


def declare_break_glass(
    conn: Connection, principal: Principal, person_pk: int, reason: str, hours: float
) -> float:
    """Open a patient's records at partner trusts to this user for ``hours``; returns
    when it expires. Audited as a security alert by the caller (``trail.record``)."""
    if principal.user_pk is None:
        raise AccessDenied("only a signed-in user can declare break-glass")
    if not principal.roles & BREAK_GLASS_ROLES:
        raise AccessDenied("break-glass is for clinicians and radiologists")
    reason = reason.strip()
    if len(reason) < 10:
        raise Conflict("break-glass needs a reason of at least 10 characters")
    now = time.time()
    expires = now + hours * 3600
    conn.execute(
        break_glass.insert().values(
            user_pk=principal.user_pk,
            person_pk=person_pk,
            reason=reason,
            created_at=now,
            expires_at=expires,
        )
    )
    return expires


def record_relationship(
    conn: Connection,
    principal: Principal,
    *,
    trust: Trust,
    person_pk: int,
    kind: str,
    reference: str = "",
    expires_at: float | None = None,
) -> None:
    """An order, encounter or referral for the person at ``trust`` (the workflow issue
    feeds these from HL7; until then an API records them)."""
    if kind not in ("order", "encounter", "referral"):
        raise Conflict("a relationship is an order, encounter or referral")
    if principal.kind is not PrincipalKind.SYSTEM:
        if principal.trust is None or principal.trust.pk != trust.pk:
            raise AccessDenied("relationships are recorded by the patient's trust")
        require_role(principal, *IMAGE_ROLES)
    same = conn.execute(
        select(relationships.c.id).where(
            relationships.c.trust_pk == trust.pk,
            relationships.c.person_pk == person_pk,
            relationships.c.kind == kind,
            relationships.c.reference == reference,
            relationships.c.expires_at.is_(None) if expires_at is None else false(),
        )
    ).first()
    if same is not None:  # the same order sent twice is one relationship
        return
    conn.execute(
        relationships.insert().values(
            trust_pk=trust.pk,
            person_pk=person_pk,
            kind=kind,
            reference=reference,
            recorded_by=principal.name,
            created_at=time.time(),
            expires_at=expires_at,
        )
    )


def end_order_relationship(
    conn: Connection, *, trust_pk: int, person_pk: int, reference: str
) -> None:
    """A cancelled order was never a reason to see the patient: its relationship ends now
    (other orders and encounters of the patient at the trust keep theirs)."""
    conn.execute(
        relationships.update()
        .where(
            relationships.c.trust_pk == trust_pk,
            relationships.c.person_pk == person_pk,
            relationships.c.kind == "order",
            relationships.c.reference == reference,
            or_(relationships.c.expires_at.is_(None), relationships.c.expires_at > time.time()),
        )
        .values(expires_at=time.time())
    )


def end_encounters(
    conn: Connection, *, trust_pk: int, person_pk: int, reference: str, at: float
) -> int:
    """A discharge (ADT A03) ends the encounter its admission began, at ``at``: the
    encounter named ``reference`` (the visit number), or every open encounter of the
    person at the trust when the discharge names none. Orders and referrals keep theirs.
    Returns how many ended."""
    now = time.time()
    named = [relationships.c.reference == reference] if reference else []
    result = conn.execute(
        relationships.update()
        .where(
            relationships.c.trust_pk == trust_pk,
            relationships.c.person_pk == person_pk,
            relationships.c.kind == "encounter",
            *named,
            or_(relationships.c.expires_at.is_(None), relationships.c.expires_at > now),
        )
        .values(expires_at=min(at, now))
    )
    return int(result.rowcount)


def person_named(conn: Connection, *, nhs_number: str = "", patient: str = "") -> int:
    """The person a request names, by NHS number or by a record ``issuer/patient ID``."""
    if nhs_number:
        return mpi.person_for_nhs(conn, nhs_number)
    return mpi.person_of(conn, mpi.find_record(conn, patient).pk)
