"""Changes to the region, each checked against the caller's roles and audited with it.

The command line (as rix itself, on the server) and the HTTP API (as a signed-in user)
both call these, so a change is allowed, made and recorded the same way whichever door
it came through: the change and its audit event commit in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection

from rix import access, audit
from rix.access import ADMIN_ROLES, Principal, checks, grounds, trail
from rix.archive import Archive
from rix.auth import credentials, identify, users
from rix.auth.credentials import CredentialKind
from rix.auth.users import Role, User
from rix.dataset import nhs
from rix.errors import AccessDenied
from rix.index.database import begin_write
from rix.region import aes, mpi, trusts
from rix.region.trusts import Trust

log = structlog.get_logger(__name__)
T = TypeVar("T")


def _change(
    archive: Archive,
    principal: Principal,
    action: str,
    change: Callable[[Connection], T],
    detail: dict[str, Any] | None = None,
    touched: trail.Touched | None = None,
    kind: audit.Kind = audit.Kind.ADMIN,
) -> T:
    with begin_write(archive.engine) as conn:
        result = change(conn)
        detail = {"action": action, **(detail or {})}
        trail.record_in(conn, principal, kind, audit.Outcome.SUCCESS, touched, detail)
    return result


def add_trust(
    archive: Archive,
    principal: Principal,
    code: str,
    name: str,
    issuer: str,
    pacs_ae: str | None = None,
) -> Trust:
    checks.require_role(principal, Role.REGION_ADMIN)
    return _change(
        archive,
        principal,
        "trust add",
        lambda conn: trusts.add_trust(conn, code=code, name=name, issuer=issuer, pacs_ae=pacs_ae),
        {"trust": code, "name": name, "issuer": issuer, "pacs_ae": pacs_ae},
    )


def set_shares_without_pin(
    archive: Archive, principal: Principal, trust: str, allowed: bool
) -> Trust:
    """Whether the trust's staff may share a link with no PIN (``rix.sharing``): the
    trust's administrators decide, or the region's."""
    checks.require_trust_admin(principal, trust)
    return _change(
        archive,
        principal,
        "trust shares-without-pin",
        lambda conn: trusts.set_shares_without_pin(conn, trust, allowed),
        {"trust": trust.strip().upper(), "shares_without_pin": allowed},
    )


def add_site(archive: Archive, principal: Principal, trust: str, code: str, name: str) -> None:
    checks.require_trust_admin(principal, trust)
    _change(
        archive,
        principal,
        "site add",
        lambda conn: trusts.add_site(conn, trust=trust, code=code, name=name),
        {"trust": trust, "site": code},
    )


def add_agreement(
    archive: Archive,
    principal: Principal,
    one: str,
    other: str,
    description: str,
    *,
    names_before_claim: bool | None = None,
) -> bool:
    """A sharing agreement (or, for one in force, its ``names_before_claim``: see
    ``trusts.add_agreement``)."""
    checks.require_role(principal, Role.REGION_ADMIN)
    detail: dict[str, Any] = {"trusts": sorted([one.upper(), other.upper()])}
    if names_before_claim is not None:
        detail["names_before_claim"] = names_before_claim
    return _change(
        archive,
        principal,
        "agreement add",
        lambda conn: trusts.add_agreement(
            conn, one, other, description, names_before_claim=names_before_claim
        ),
        detail,
    )


def remove_agreement(archive: Archive, principal: Principal, one: str, other: str) -> bool:
    checks.require_role(principal, Role.REGION_ADMIN)
    return _change(
        archive,
        principal,
        "agreement remove",
        lambda conn: trusts.remove_agreement(conn, one, other),
        {"trusts": sorted([one.upper(), other.upper()])},
    )


def add_user(
    archive: Archive,
    principal: Principal,
    *,
    username: str,
    roles: frozenset[Role],
    trust: str = "",
    display_name: str = "",
    password: str = "",
    email: str = "",
) -> User:
    """Region administrators add anyone; trust administrators their own trust's staff,
    never region roles (no one grants more than they hold)."""
    checks.require_grant(principal, trust, roles)
    return _change(
        archive,
        principal,
        "user add",
        lambda conn: users.add_user(
            conn,
            username=username,
            roles=roles,
            trust=trust,
            display_name=display_name,
            password=password,
            email=email,
        ),
        {
            "user": username,
            "trust": trust,
            "roles": sorted(r.value for r in roles),
            "password_set": bool(password),
        },
    )


def create_token(
    archive: Archive, principal: Principal, username: str, label: str, days: float | None
) -> str:
    """An API token for ``username``: users make their own; administrators their staff's."""
    if principal.kind is access.PrincipalKind.USER and principal.name == username:
        with archive.engine.connect() as conn:
            user = users.get_user(conn, username)
    else:
        user = _may_manage(archive, principal, username)
    lifetime = None if days is None else days * 86400
    return _change(
        archive,
        principal,
        "token create",
        lambda conn: credentials.issue(
            conn, user_pk=user.pk, kind=CredentialKind.API_TOKEN, label=label, lifetime=lifetime
        ),
        {"user": username, "label": label, "days": days},
    )


def _may_manage(archive: Archive, principal: Principal, username: str) -> User:
    with archive.engine.connect() as conn:
        user = users.get_user(conn, username)
    if user.trust is not None:
        checks.require_trust_admin(principal, user.trust.code)
    else:
        checks.require_role(principal, Role.REGION_ADMIN)
    return user


def revoke_tokens(archive: Archive, principal: Principal, username: str) -> int:
    """End every API token of a user (a leaked token, a script retired)."""
    user = _may_manage(archive, principal, username)
    revoked = _change(
        archive,
        principal,
        "token revoke",
        lambda conn: credentials.revoke_all(conn, user.pk, CredentialKind.API_TOKEN),
        {"user": username},
    )
    identify.RECENT.forget()  # after the commit: a request in between cannot re-cache it
    return revoked


def disable_user(archive: Archive, principal: Principal, username: str) -> None:
    """A leaver: no sign-in, no token, no session works from now on."""
    user = _may_manage(archive, principal, username)

    def change(conn: Connection) -> None:
        users.set_active(conn, username, False)
        for kind in CredentialKind:
            credentials.revoke_all(conn, user.pk, kind)

    _change(archive, principal, "user disable", change, {"user": username})
    identify.RECENT.forget()


def add_ae(archive: Archive, principal: Principal, ae: aes.RemoteAE, trust: str) -> None:
    if trust:
        checks.require_trust_admin(principal, trust)
    else:
        checks.require_role(principal, Role.REGION_ADMIN)
    _change(
        archive,
        principal,
        "ae add",
        lambda conn: aes.add(conn, ae, trust),
        {"ae": ae.title, "host": ae.host, "port": ae.port, "trust": trust},
    )


def remove_ae(archive: Archive, principal: Principal, title: str) -> bool:
    peer = aes.get(archive.engine, title)
    if peer is not None and peer.trust is not None:
        checks.require_trust_admin(principal, peer.trust.code)
    else:
        checks.require_role(principal, Role.REGION_ADMIN)
    return _change(
        archive, principal, "ae remove", lambda conn: aes.remove(conn, title), {"ae": title}
    )


def _named(archive: Archive, nhs_number: str, patient: str) -> trail.Touched:
    """The patient a request names, with the record's NHS number when it has one, so a
    search by NHS number finds the event however the patient was named."""
    if nhs_number or not patient:
        return trail.Touched(patient=patient, nhs_number=nhs.normalise(nhs_number))
    with archive.engine.connect() as conn:
        rec = mpi.find_record(conn, patient)
    return _record_touched(rec)


def _record_touched(rec: mpi.Record) -> trail.Touched:
    return trail.Touched(patient=rec.ref, nhs_number=rec.nhs_number)


def link(archive: Archive, principal: Principal, patient: str, to_patient: str) -> int:
    checks.require_role(principal, Role.REGION_ADMIN)
    with archive.engine.connect() as conn:
        rec, target = mpi.find_record(conn, patient), mpi.find_record(conn, to_patient)
    return _change(
        archive,
        principal,
        "mpi link",
        lambda conn: mpi.link(conn, rec.pk, target.pk),
        {"to": target.ref},
        _record_touched(rec),
    )


def unlink(archive: Archive, principal: Principal, patient: str) -> None:
    checks.require_role(principal, Role.REGION_ADMIN)
    with archive.engine.connect() as conn:
        rec = mpi.find_record(conn, patient)
    _change(
        archive,
        principal,
        "mpi unlink",
        lambda conn: mpi.unlink(conn, rec.pk),
        {"person": rec.person_pk},
        _record_touched(rec),
    )


def dismiss_review(archive: Archive, principal: Principal, review_id: int) -> None:
    checks.require_role(principal, Role.REGION_ADMIN)
    _change(
        archive,
        principal,
        "mpi dismiss",
        lambda conn: mpi.dismiss(conn, review_id),
        {"review": review_id},
    )


def assign_nhs_number(
    archive: Archive, principal: Principal, patient: str, nhs_number: str
) -> mpi.Record:
    """An NHS number learnt after the images (HL7 ADT, an administrator)."""
    checks.require_role(principal, *ADMIN_ROLES)
    with archive.engine.connect() as conn:
        rec = mpi.find_record(conn, patient)
    checks.require_trust_admin(principal, rec.trust or "-")
    return _change(
        archive,
        principal,
        "mpi nhs-number",
        lambda conn: mpi.assign_nhs_number(conn, rec.pk, nhs_number),
        {},
        trail.Touched(patient=rec.ref, nhs_number=nhs_number),
    )


def record_relationship(
    archive: Archive,
    principal: Principal,
    *,
    trust: str,
    nhs_number: str = "",
    patient: str = "",
    kind: str,
    reference: str = "",
    expires_at: float | None = None,
) -> None:
    def change(conn: Connection) -> None:
        person = grounds.person_named(conn, nhs_number=nhs_number, patient=patient)
        grounds.record_relationship(
            conn,
            principal,
            trust=trusts.get_trust(conn, trust),
            person_pk=person,
            kind=kind,
            reference=reference,
            expires_at=expires_at,
        )

    _change(
        archive,
        principal,
        "relationship add",
        change,
        {"trust": trust, "kind": kind, "reference": reference},
        _named(archive, nhs_number, patient),
    )


def break_glass(
    archive: Archive,
    principal: Principal,
    *,
    reason: str,
    nhs_number: str = "",
    patient: str = "",
) -> grounds.BreakGlass:
    """Declare break-glass: what it opened, audited and raised as a security alert in the
    log. One that would open nothing is refused (``grounds.OpensNothing``): audited as a
    refused break-glass with the reason, and no alert, since nothing was opened."""
    if principal.user_pk is None:
        raise AccessDenied("only a signed-in user can declare break-glass")

    def change(conn: Connection) -> grounds.BreakGlass:
        person = grounds.person_named(conn, nhs_number=nhs_number, patient=patient)
        return grounds.declare_break_glass(
            conn, principal, person, reason, archive.settings.break_glass_hours
        )

    touched = _named(archive, nhs_number, patient)
    try:
        declared = _change(
            archive,
            principal,
            "break-glass",
            change,
            {"reason": reason},
            touched,
            kind=audit.Kind.BREAK_GLASS,
        )
    except grounds.OpensNothing as exc:
        detail = {"action": "break-glass", "reason": reason, "refused": exc.reason}
        trail.record(
            archive.writer.submit,
            principal,
            audit.Kind.BREAK_GLASS,
            audit.Outcome.REFUSED,
            touched,
            detail,
        )
        raise
    # a security alert for whoever watches the logs; the patient stays in the audit trail
    log.warning(
        "security alert: break-glass declared", user=principal.name, studies=declared.studies
    )
    return declared
