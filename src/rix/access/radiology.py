"""The radiology workflow's decisions: who places and reads a trust's orders, what a
Modality Worklist query and an MPPS reach, which studies a radiologist's worklist lists
and reports, and what a turnaround dashboard counts."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import ColumnElement, Connection, or_, select

from rix.access import EVERYTHING, IMAGE_ROLES, REGION_ROLES, Principal, PrincipalKind, scope
from rix.auth.users import Role
from rix.errors import AccessDenied
from rix.index.schema import studies
from rix.region import trusts
from rix.region.trusts import Trust

# --- turnaround ---


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnaroundView:
    """What a principal's turnaround dashboard counts (``scope``: SQL over ``studies``,
    ``EVERYTHING`` for all) and whether it may name the studies it counts (UID, accession)."""

    scope: ColumnElement[bool]
    identifiers: bool


def require_turnaround(principal: Principal) -> TurnaroundView:
    """Staff with a clinical role or trust-admin count what they may see, and may follow a
    study to open it; region administrators and auditors, who see no images, count every
    trust's studies without naming one (a backlog is a regional matter; its studies are
    not theirs to open); rix itself (the alert check) counts and names everything."""
    if principal.kind is PrincipalKind.SYSTEM:
        return TurnaroundView(scope=EVERYTHING, identifiers=True)
    if principal.kind is PrincipalKind.USER and principal.roles & REGION_ROLES:
        return TurnaroundView(scope=EVERYTHING, identifiers=False)
    if principal.kind is PrincipalKind.USER and principal.sees_images:
        seen = scope(principal)
        if Role.RADIOLOGIST in principal.roles and principal.trust:
            # the shared worklist lists partners' studies: their backlog is theirs to count
            seen = or_(seen, _reporting_scope(principal.trust.pk))
        return TurnaroundView(scope=seen, identifiers=True)
    raise AccessDenied("turnaround is for staff of a trust, region administrators and auditors")


# --- reporting ---


def require_reporter(principal: Principal) -> Trust:
    """Reports are written by a signed-in radiologist of a trust, as themselves (a report
    is signed by a person); returns their trust."""
    if principal.kind is not PrincipalKind.USER or principal.user_pk is None:
        raise AccessDenied("reports are written by a signed-in radiologist")
    if Role.RADIOLOGIST not in principal.roles or principal.trust is None:
        raise AccessDenied("reporting needs the role radiologist at a trust")
    return principal.trust


def reporting_scope(principal: Principal) -> ColumnElement[bool]:
    """SQL over ``studies``: what a radiologist's worklist lists, their own trust's
    studies and those of every trust theirs has a sharing agreement with. Listing is not
    opening: a partner's images open only through a claim or a report (``scope``)."""
    return _reporting_scope(require_reporter(principal).pk)


@lru_cache(maxsize=1024)
def _reporting_scope(trust_pk: int) -> ColumnElement[bool]:
    return or_(studies.c.trust_pk == trust_pk, studies.c.trust_pk.in_(trusts.partners(trust_pk)))


def names_shown(principal: Principal) -> ColumnElement[bool]:
    """SQL over ``studies``: whether a radiologist's worklist names a study's patient (name,
    hospital and NHS numbers). Yes for their own trust's studies, for partners whose
    agreement says so (``agreements.names_before_claim``, the default) and for any study
    open to them (``scope``: their claim, a report they wrote); otherwise the partner's
    study is listed without its patient until they claim it: data minimisation a trust
    may ask of a shared reporting service."""
    trust = require_reporter(principal)
    hiding = trusts.partners_hiding_names(trust.pk)
    return or_(studies.c.trust_pk.not_in(hiding), scope(principal))


def require_reportable(conn: Connection, principal: Principal, study_uid: str) -> None:
    """A radiologist claims, and reports, only studies on their worklist."""
    query = select(studies.c.id).where(studies.c.study_uid == study_uid, reporting_scope(principal))
    if conn.execute(query).first() is None:
        raise AccessDenied("this study is not on the reporting worklist of your trust")


# --- orders ---


def require_order(principal: Principal, trust: str) -> None:
    """Who may place, change, cancel or reconcile a trust's orders: its clinical staff and
    trust administrators, or rix itself (the trust's own HL7 feed, whose sender
    ``rix.hl7`` has checked). An order opens the patient's images at partner trusts to
    the trust's staff (it is a relationship), so nobody else may make one."""
    if principal.kind is PrincipalKind.SYSTEM:
        return
    if principal.kind is not PrincipalKind.USER or not principal.roles & IMAGE_ROLES:
        raise AccessDenied("orders are placed by a trust's clinical staff")
    if principal.trust_code != trust.strip().upper():
        raise AccessDenied(f"orders of {trust} are placed by its own staff")


def require_orders_read(principal: Principal) -> Trust | None:
    """Whose orders a principal may list: a trust's clinical staff and administrators
    their own trust's; rix itself every trust's (None)."""
    if principal.kind is PrincipalKind.SYSTEM:
        return None
    if principal.kind is not PrincipalKind.USER or principal.trust is None:
        raise AccessDenied("orders are read by a trust's staff")
    if not principal.roles & IMAGE_ROLES:
        raise AccessDenied("orders are read by clinical staff and trust administrators")
    return principal.trust


def worklist_trust(principal: Principal) -> Trust | None:
    """The trust whose scheduled orders a Modality Worklist query sees: a registered AE's
    trust, or the trust of the user an association names; an unregistered AE sees none."""
    if principal.kind is PrincipalKind.AE:
        return principal.trust
    if principal.kind is PrincipalKind.USER and principal.sees_images:
        return principal.trust
    return None


def require_mpps(principal: Principal) -> Trust:
    """Performed procedure steps move a trust's orders: only from an AE registered to the
    trust (or a user of it); an unregistered AE's MPPS is refused."""
    trust = worklist_trust(principal)
    if trust is None:
        raise AccessDenied("MPPS is accepted from AEs registered to a trust")
    return trust
