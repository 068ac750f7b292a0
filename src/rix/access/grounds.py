"""What opens a partner trust's images to a user (the grounds ``scope`` reads): an order,
encounter or referral for the patient at the user's trust, or a declared break-glass.

Each is a row the scope's query reads itself, so recording or ending one applies to the
next query (``rix.access.scope``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, false, or_, select

from rix.access import BREAK_GLASS_ROLES, IMAGE_ROLES, Principal, PrincipalKind
from rix.access.checks import require_role
from rix.errors import AccessDenied, Conflict, NotFound
from rix.index import people
from rix.index.schema import break_glass, relationships
from rix.region import mpi, trusts
from rix.region.trusts import Trust

REASON_MIN = 10  # characters: a reason someone reviewing it can act on


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakGlass:
    """A break-glass in force: until when, and what it opens, as studies of the person
    held by each trust sharing with the user's (by trust code)."""

    expires_at: float
    opened: dict[str, int]

    @property
    def studies(self) -> int:
        return sum(self.opened.values())


class OpensNothing(AccessDenied):
    """Break-glass would open nothing: no trust sharing with the user's holds studies of
    the patient (the user's own trust's are open without it). Refused, so that a yes
    always means images were opened; audited as a refused break-glass, with no alert."""

    def __init__(self) -> None:
        super().__init__(
            "break-glass would open nothing: no trust with a sharing agreement with yours "
            "holds images of this patient"
        )


def declare_break_glass(
    conn: Connection, principal: Principal, person_pk: int, reason: str, hours: float
) -> BreakGlass:
    """Open a patient's studies at partner trusts to this user for ``hours``: what it
    opened, or ``OpensNothing``. Audited as a security alert by the caller."""
    if principal.user_pk is None:
        raise AccessDenied("only a signed-in user can declare break-glass")
    if not principal.roles & BREAK_GLASS_ROLES:
        raise AccessDenied("break-glass is for clinicians and radiologists")
    reason = reason.strip()
    if len(reason) < REASON_MIN:
        raise Conflict(f"break-glass needs a reason of at least {REASON_MIN} characters")
    opened = _opened(conn, principal, person_pk)
    if not opened:
        raise OpensNothing()
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
    return BreakGlass(expires_at=expires, opened=opened)


def break_glass_in_force(
    conn: Connection, principal: Principal, *, nhs_number: str = "", patient: str = ""
) -> BreakGlass | None:
    """The user's break-glass of the person named, while it lasts (reading only)."""
    if principal.user_pk is None:
        return None
    try:
        person = (
            mpi.find_person(conn, nhs_number)
            if nhs_number
            else mpi.find_record(conn, patient).person_pk
        )
    except NotFound:
        return None
    if person is None:
        return None
    expires = conn.execute(
        select(break_glass.c.expires_at)
        .where(
            break_glass.c.user_pk == principal.user_pk,
            break_glass.c.person_pk == person,
            break_glass.c.expires_at > time.time(),
        )
        .order_by(break_glass.c.expires_at.desc())
    ).scalar()
    if expires is None:
        return None
    return BreakGlass(expires_at=float(expires), opened=_opened(conn, principal, person))


def _opened(conn: Connection, principal: Principal, person_pk: int) -> dict[str, int]:
    """The person's studies a break-glass opens: those of trusts sharing with the user's
    (``rix.access.scope`` reads the same agreements)."""
    if principal.trust is None:
        return {}
    return people.studies_held(conn, person_pk, trusts.partners(principal.trust.pk))


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
