"""Who may administer the region and its trusts, and who may bring images in or send them
out: each check raises ``AccessDenied`` with the reason, or returns.

Listing is decided here too (``administered_trust``, ``administered_users``): a page or
an endpoint that shows only part of what exists asks this module which part.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection

from rix.access import ADMIN_ROLES, IMAGE_ROLES, REGION_ROLES, Principal, PrincipalKind
from rix.auth.users import Role, User
from rix.errors import AccessDenied
from rix.region import aes, mpi
from rix.region.trusts import Trust

# --- administration ---


def require_role(principal: Principal, *roles: Role) -> None:
    """Administrative actions: the principal must hold one of ``roles``."""
    if principal.kind is PrincipalKind.SYSTEM:
        return
    if not principal.roles & set(roles):
        raise AccessDenied(f"needs the role {' or '.join(r.value for r in roles)}")


def require_trust_admin(principal: Principal, trust: str) -> None:
    """Region administrators manage every trust; trust administrators their own."""
    if principal.kind is PrincipalKind.SYSTEM or Role.REGION_ADMIN in principal.roles:
        return
    if Role.TRUST_ADMIN in principal.roles and principal.trust_code == trust.strip().upper():
        return
    raise AccessDenied(f"needs region-admin, or trust-admin of {trust}")


def require_patient_change(principal: Principal, trust: str) -> None:
    """Correcting or merging a trust's patient records (as its ADT A08/A40 would): the
    trust's administrators, region administrators, or the trust's own feed."""
    if principal.kind is PrincipalKind.SYSTEM or Role.REGION_ADMIN in principal.roles:
        return
    require_trust_admin(principal, trust)


def may_administer(principal: Principal) -> bool:
    """Whether a page offers administration (its forms, its menu entry); every change is
    still checked by the function that makes it."""
    return bool(principal.roles & set(ADMIN_ROLES))


def require_grant(principal: Principal, trust: str, roles: frozenset[Role]) -> None:
    """Region administrators add anyone; trust administrators their own trust's staff,
    never region roles (no one grants more than they hold)."""
    if trust:
        require_trust_admin(principal, trust)
    else:
        require_role(principal, Role.REGION_ADMIN)
    if roles & REGION_ROLES:
        require_role(principal, Role.REGION_ADMIN)


def manageable_trusts(principal: Principal, codes: Sequence[str]) -> list[str]:
    """Of ``codes``, the trusts whose sites, peers and staff ``principal`` may change: the
    choices a form offers (``require_trust_admin`` decides each change)."""
    if Role.REGION_ADMIN in principal.roles:
        return list(codes)
    if Role.TRUST_ADMIN in principal.roles and principal.trust_code in codes:
        return [principal.trust_code]
    return []


def grantable_roles(principal: Principal) -> list[Role]:
    """The roles a form offers ``principal`` to grant (``require_grant`` decides)."""
    return [r for r in Role if Role.REGION_ADMIN in principal.roles or r not in REGION_ROLES]


def administered_trust(principal: Principal) -> int | None:
    """The trust whose jobs, figures and staff an administrator sees: None (every trust)
    for rix itself and region administrators; -1 (none) for anyone without a trust."""
    if Role.REGION_ADMIN in principal.roles or principal.kind is PrincipalKind.SYSTEM:
        return None
    return principal.trust.pk if principal.trust is not None else -1


def administered_users(principal: Principal, found: Iterable[User]) -> list[User]:
    """The users an administrator lists: every one for a region administrator, their own
    trust's staff for a trust administrator."""
    own = administered_trust(principal)
    return [u for u in found if own is None or (u.trust is not None and u.trust.pk == own)]


def require_job_admin(principal: Principal, job_trust_pk: int | None) -> None:
    """Jobs are managed by region administrators (and rix) for every trust, by trust
    administrators for their own trust's."""
    require_role(principal, *ADMIN_ROLES)
    own = administered_trust(principal)
    if own is not None and job_trust_pk != own:
        raise AccessDenied("trust administrators manage their own trust's jobs")


# --- images in and out ---


def require_store(principal: Principal) -> None:
    """Storing makes images a trust's: a user needs a clinical role at one (an AE's
    trust, or none for an anonymous AE, is who it stores for); a share's recipient reads."""
    if principal.kind is PrincipalKind.SHARE:
        raise AccessDenied("a shared study is read-only")
    if principal.kind is PrincipalKind.USER and not principal.sees_images:
        raise AccessDenied("storing images needs a clinical role at a trust")


def require_import(principal: Principal) -> Trust:
    """Who may import outside media: a signed-in user with a clinical role (or
    trust-admin) at a trust, which becomes the owner of what is stored; returns it."""
    if principal.kind is not PrincipalKind.USER:
        raise AccessDenied("outside media are imported by a signed-in user")
    require_store(principal)
    if principal.trust is None:
        raise AccessDenied("importing needs a user of a trust")
    return principal.trust


def require_own_record(trust: Trust, issuer: str, ref: str) -> None:
    """Outside media are reconciled only to records of the importing trust: choosing
    another trust's record would file images under a patient it does not hold."""
    if issuer != trust.issuer:
        raise AccessDenied(f"{ref!r} is not a patient record of {trust.code}")


def require_transfer(
    conn: Connection, principal: Principal, trust: Trust, from_trust: str, person_pk: int
) -> None:
    """Who may send a patient's images to ``trust`` (and so open them to its staff):
    clinical staff of that trust; of the trust the patient leaves only when it holds a
    record of theirs (else anyone could open any patient to another trust); or rix itself
    (an HL7 feed from the receiving trust's own system, the command line)."""
    if principal.kind is PrincipalKind.SYSTEM:
        return
    if not principal.roles & IMAGE_ROLES:
        raise AccessDenied("transfers are requested by clinical staff")
    if principal.trust_code == trust.code:
        return
    if principal.trust is not None and principal.trust_code == from_trust.strip().upper():
        issuers = {r.issuer for r in mpi.records_of_person(conn, person_pk)}
        if principal.trust.issuer in issuers:
            return
    raise AccessDenied(
        "transfers are requested by the receiving trust, or by the trust holding the patient"
    )


def require_send(principal: Principal, destination: aes.RemoteAE) -> None:
    """Who may send a study they can see to a DICOM destination: clinical staff, to an AE
    registered to their own trust that keeps what it is sent (a PACS or a workstation,
    ``aes.STORING``). Sending to another trust's AE would open the images to that trust:
    that is a transfer (``require_transfer``), with its own checks. A modality is no
    destination: it would refuse the study, or worse, keep a copy nobody looks after."""
    reason = _why_not_send(principal, destination)
    if reason is not None:
        raise AccessDenied(reason)


def may_send(principal: Principal, destination: aes.RemoteAE) -> bool:
    """``require_send`` as a question: what the study page offers."""
    return _why_not_send(principal, destination) is None


def _why_not_send(principal: Principal, destination: aes.RemoteAE) -> str | None:
    if not destination.stores:
        return (
            f"{destination.title} is a {destination.kind.value}: studies are sent to "
            "destinations that store them (a PACS or a workstation)"
        )
    if principal.kind is PrincipalKind.SYSTEM:
        return None
    if not principal.roles & IMAGE_ROLES:
        return "studies are sent by clinical staff"
    trust = destination.trust.code if destination.trust is not None else ""
    if principal.trust is None or principal.trust_code != trust:
        return "studies are sent to your own trust's DICOM destinations"
    return None


def require_prefetch(principal: Principal, trust: str) -> None:
    """A patient's priors are fetched to a trust by its own clinical staff, or by rix."""
    if principal.kind is PrincipalKind.SYSTEM:
        return
    if principal.trust_code != trust.strip().upper() or not principal.roles & IMAGE_ROLES:
        raise AccessDenied("priors are fetched by clinical staff for their own trust")
