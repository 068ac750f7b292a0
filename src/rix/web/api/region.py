"""The region's HTTP API under ``/api``: administration, relationships, break-glass, the
regional timeline and audit search. Every route needs a signed-in principal; each change
goes through ``rix.region.admin`` (role checks and audit) like the command line's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, StringConstraints

from rix import audit
from rix.access import ADMIN_ROLES, Principal, checks, grounds, trail
from rix.admin import region as admin
from rix.archive import Archive
from rix.auth import users
from rix.auth.users import Role, parse_roles
from rix.region import aes, mpi, trusts
from rix.retrieve import timeline as timeline_of
from rix.web.api.region_answers import (
    AEAddedOut,
    AEOut,
    AgreementAddedOut,
    AuditEventOut,
    BreakGlassOut,
    DisabledOut,
    DismissedOut,
    LinkedOut,
    MeOut,
    NhsNumberOut,
    RelationshipOut,
    RemovedOut,
    ReviewOut,
    RevokedOut,
    SiteAddedOut,
    TimelineOut,
    TokenOut,
    TrustOut,
    TrustsOut,
    UnlinkedOut,
    UserAddedOut,
    UserOut,
)
from rix.web.auth import principal_of
from rix.web.context import archive_of
from rix.web.fields import (
    PRINTABLE,
    Code,
    Name,
    NhsNumber,
    PatientNamed,
    PatientRef,
    RowId,
    Text,
)

router = APIRouter(prefix="/api", tags=["region"])


class TrustIn(BaseModel):
    code: Code
    name: Text
    issuer: Annotated[str, StringConstraints(pattern=PRINTABLE, max_length=64)] = ""
    pacs: Annotated[str, StringConstraints(pattern=PRINTABLE, max_length=16)] | None = None


class SiteIn(BaseModel):
    code: Code
    name: Text


class AgreementIn(BaseModel):
    trust: Code
    other: Code
    description: Text = ""
    # the shared worklist names each trust's patients to the other's radiologists before
    # a claim; None: yes for a new agreement, unchanged for one in force
    names_before_claim: bool | None = None


class UserIn(BaseModel):
    username: Name
    roles: list[Name] = Field(max_length=6)
    trust: Annotated[str, StringConstraints(pattern=PRINTABLE, max_length=16)] = ""
    display_name: Text = ""
    password: Annotated[str, StringConstraints(max_length=1024)] = ""
    email: Annotated[str, StringConstraints(max_length=254)] = ""


class TokenIn(BaseModel):
    label: Text = ""
    days: float | None = Field(None, gt=0, le=3660)


class AEIn(BaseModel):
    title: Code
    host: Annotated[str, StringConstraints(pattern=PRINTABLE, min_length=1, max_length=255)]
    port: int = Field(gt=0, lt=65536)
    trust: Annotated[str, StringConstraints(pattern=PRINTABLE, max_length=16)] = ""
    description: Text = ""
    kind: aes.Kind = aes.Kind.PACS  # pacs and workstation store; studies are sent only there


class RelationshipIn(PatientNamed):
    trust: Code
    kind: Annotated[str, StringConstraints(pattern="^(order|encounter|referral)$")]
    reference: Text = ""
    expires_at: float | None = None


class TrustSettingsIn(BaseModel):
    shares_without_pin: bool


class TrustSettingsOut(BaseModel):
    code: str
    shares_without_pin: bool


class BreakGlassIn(PatientNamed):
    # empty, blank or too short to review is a malformed request (422), as any field
    reason: Annotated[
        str,
        StringConstraints(
            pattern=PRINTABLE,
            strip_whitespace=True,
            min_length=grounds.REASON_MIN,
            max_length=1024,
        ),
    ]


class LinkIn(BaseModel):
    patient: PatientRef
    to: PatientRef


class UnlinkIn(BaseModel):
    patient: PatientRef


class NhsNumberIn(BaseModel):
    patient: PatientRef
    nhs_number: NhsNumber


def _me(request: Request) -> tuple[Archive, Principal]:
    return archive_of(request), principal_of(request)


@router.get(
    "/me",
    summary="Who you are signed in as",
    response_model=MeOut,
)
def me(request: Request) -> dict[str, Any]:
    p = principal_of(request)
    return {"name": p.name, "trust": p.trust_code, "roles": sorted(p.roles)}


@router.get(
    "/trusts",
    summary="Trusts, their sites, and the sharing agreements",
    response_model=TrustsOut,
)
def list_trusts(request: Request) -> dict[str, Any]:
    archive = archive_of(request)
    with archive.engine.connect() as conn:
        found = [
            {
                "code": t.code,
                "name": t.name,
                "issuer": t.issuer,
                "pacs": t.pacs_ae,
                "sites": [{"code": c, "name": n} for c, n in trusts.sites_of(conn, t.code)],
            }
            for t in trusts.all_trusts(conn)
        ]
        shared = [
            {
                "trusts": [a.trust_a, a.trust_b],
                "description": a.description,
                "names_before_claim": a.names_before_claim,
            }
            for a in trusts.all_agreements(conn)
        ]
    return {"trusts": found, "agreements": shared}


@router.post(
    "/trusts",
    status_code=201,
    summary="Add or update a trust (region-admin)",
    response_model=TrustOut,
)
def add_trust(request: Request, body: TrustIn) -> dict[str, str]:
    archive, principal = _me(request)
    trust = admin.add_trust(archive, principal, body.code, body.name, body.issuer, body.pacs)
    return {"code": trust.code, "name": trust.name, "issuer": trust.issuer, "pacs": trust.pacs_ae}


@router.post(
    "/trusts/{code}/sites",
    status_code=201,
    summary="Add a site to a trust",
    response_model=SiteAddedOut,
)
def add_site(request: Request, code: str, body: SiteIn) -> dict[str, str]:
    archive, principal = _me(request)
    admin.add_site(archive, principal, code, body.code, body.name)
    return {"trust": code.upper(), "code": body.code.upper()}


@router.patch(
    "/trusts/{code}",
    summary="Change a trust's settings (its trust-admin, or region-admin)",
    response_model=TrustSettingsOut,
)
def change_trust(request: Request, code: str, body: TrustSettingsIn) -> dict[str, Any]:
    """``shares_without_pin``: whether the trust's staff may share a link with no PIN
    (``POST /api/shares`` with ``"pin": false``); audited."""
    archive, principal = _me(request)
    trust = admin.set_shares_without_pin(archive, principal, code, body.shares_without_pin)
    return {"code": trust.code, "shares_without_pin": trust.shares_without_pin}


@router.post(
    "/agreements",
    status_code=201,
    summary="Add a sharing agreement (region-admin)",
    response_model=AgreementAddedOut,
)
def add_agreement(request: Request, body: AgreementIn) -> dict[str, Any]:
    archive, principal = _me(request)
    added = admin.add_agreement(
        archive,
        principal,
        body.trust,
        body.other,
        body.description,
        names_before_claim=body.names_before_claim,
    )
    return {"trusts": sorted([body.trust.upper(), body.other.upper()]), "added": added}


@router.delete(
    "/agreements/{trust}/{other}",
    summary="End a sharing agreement (region-admin)",
    response_model=RemovedOut,
)
def remove_agreement(request: Request, trust: str, other: str) -> dict[str, bool]:
    archive, principal = _me(request)
    return {"removed": admin.remove_agreement(archive, principal, trust, other)}


@router.get(
    "/users",
    summary="Users (administrators)",
    response_model=list[UserOut],
)
def list_users(request: Request) -> list[dict[str, Any]]:
    archive, principal = _me(request)
    checks.require_role(principal, *ADMIN_ROLES)
    with archive.engine.connect() as conn:
        found = checks.administered_users(principal, users.all_users(conn))
    return [
        {
            "username": u.username,
            "display_name": u.display_name,
            "email": u.email,
            "trust": u.trust.code if u.trust else "",
            "roles": sorted(u.roles),
            "active": u.active,
        }
        for u in found
    ]


@router.post(
    "/users",
    status_code=201,
    summary="Add or update a user (administrators)",
    response_model=UserAddedOut,
)
def add_user(request: Request, body: UserIn) -> dict[str, Any]:
    archive, principal = _me(request)
    user = admin.add_user(
        archive,
        principal,
        username=body.username,
        roles=parse_roles(",".join(body.roles)),
        trust=body.trust,
        display_name=body.display_name,
        password=body.password,
        email=body.email,
    )
    return {"username": user.username, "roles": sorted(user.roles)}


@router.post(
    "/users/{username}/tokens",
    status_code=201,
    summary="A new API token",
    response_model=TokenOut,
)
def create_token(request: Request, username: str, body: TokenIn) -> dict[str, str]:
    archive, principal = _me(request)
    return {"token": admin.create_token(archive, principal, username, body.label, body.days)}


@router.delete(
    "/users/{username}/tokens",
    summary="End every API token of a user",
    response_model=RevokedOut,
)
def revoke_tokens(request: Request, username: str) -> dict[str, int]:
    archive, principal = _me(request)
    return {"revoked": admin.revoke_tokens(archive, principal, username)}


@router.post(
    "/users/{username}/disable",
    summary="Disable a user (administrators)",
    response_model=DisabledOut,
)
def disable_user(request: Request, username: str) -> dict[str, str]:
    archive, principal = _me(request)
    admin.disable_user(archive, principal, username)
    return {"disabled": username}


@router.get(
    "/aes",
    summary="Registered DICOM peers",
    response_model=list[AEOut],
)
def list_aes(request: Request) -> list[dict[str, Any]]:
    archive, principal = _me(request)
    checks.require_role(principal, *ADMIN_ROLES)
    return [
        {
            "title": a.title,
            "host": a.host,
            "port": a.port,
            "trust": a.trust.code if a.trust else "",
            "kind": a.kind.value,
            "description": a.description,
        }
        for a in aes.all_aes(archive.engine)
    ]


@router.post(
    "/aes",
    status_code=201,
    summary="Register a DICOM peer (administrators)",
    response_model=AEAddedOut,
)
def add_ae(request: Request, body: AEIn) -> dict[str, str]:
    archive, principal = _me(request)
    peer = aes.RemoteAE(
        title=body.title,
        host=body.host,
        port=body.port,
        description=body.description,
        kind=body.kind,
    )
    admin.add_ae(archive, principal, peer, body.trust)
    return {"title": body.title}


@router.delete(
    "/aes/{title}",
    summary="Remove a DICOM peer (administrators)",
    response_model=RemovedOut,
)
def remove_ae(request: Request, title: str) -> dict[str, bool]:
    archive, principal = _me(request)
    return {"removed": admin.remove_ae(archive, principal, title)}


@router.get(
    "/mpi/reviews",
    summary="MPI records waiting for an administrator",
    response_model=list[ReviewOut],
)
def mpi_reviews(request: Request) -> list[dict[str, Any]]:
    archive, principal = _me(request)
    checks.require_role(principal, Role.REGION_ADMIN)
    with archive.engine.connect() as conn:
        reviews = mpi.open_reviews(conn)
    return [
        {
            "id": r.id,
            "patient": r.patient,
            "nhs_number": r.nhs_number,
            "kind": r.kind,
            "detail": r.detail,
            "created_at": r.created_at,
        }
        for r in reviews
    ]


@router.post(
    "/mpi/reviews/{review_id}/dismiss",
    summary="Close a review without linking",
    response_model=DismissedOut,
)
def mpi_dismiss(request: Request, review_id: RowId) -> dict[str, int]:
    archive, principal = _me(request)
    admin.dismiss_review(archive, principal, review_id)
    return {"dismissed": review_id}


@router.post(
    "/mpi/link",
    summary="Link a record to another's person by hand (region-admin)",
    response_model=LinkedOut,
)
def mpi_link(request: Request, body: LinkIn) -> dict[str, Any]:
    archive, principal = _me(request)
    return {"person": admin.link(archive, principal, body.patient, body.to)}


@router.post(
    "/mpi/unlink",
    summary="Unlink a record by hand (region-admin)",
    response_model=UnlinkedOut,
)
def mpi_unlink(request: Request, body: UnlinkIn) -> dict[str, str]:
    archive, principal = _me(request)
    admin.unlink(archive, principal, body.patient)
    return {"unlinked": body.patient}


@router.put(
    "/mpi/nhs-number",
    summary="Give a record its NHS number (administrators)",
    response_model=NhsNumberOut,
)
def mpi_nhs_number(request: Request, body: NhsNumberIn) -> dict[str, Any]:
    archive, principal = _me(request)
    rec = admin.assign_nhs_number(archive, principal, body.patient, body.nhs_number)
    return {"patient": rec.ref, "nhs_number": rec.nhs_number, "link": rec.link_state}


@router.post(
    "/relationships",
    status_code=201,
    summary="Record an order, encounter or referral",
    response_model=RelationshipOut,
)
def add_relationship(request: Request, body: RelationshipIn) -> dict[str, str]:
    archive, principal = _me(request)
    body.check()
    admin.record_relationship(
        archive,
        principal,
        trust=body.trust,
        nhs_number=body.nhs_number,
        patient=body.patient,
        kind=body.kind,
        reference=body.reference,
        expires_at=body.expires_at,
    )
    return {"trust": body.trust.upper(), "kind": body.kind}


@router.post(
    "/break-glass",
    status_code=201,
    summary="Declare break-glass for a patient",
    response_model=BreakGlassOut,
)
def break_glass(request: Request, body: BreakGlassIn) -> dict[str, Any]:
    """Opens the patient's studies at trusts sharing with yours for ``break_glass_hours``,
    with the reason in the audit trail and a security alert raised; answers what it
    opened. 403 with the reason when it would open nothing (no trust with a sharing
    agreement with yours holds the patient's images): audited as refused, no alert."""
    archive, principal = _me(request)
    body.check()
    declared = admin.break_glass(
        archive, principal, reason=body.reason, nhs_number=body.nhs_number, patient=body.patient
    )
    return {
        "expires_at": declared.expires_at,
        "studies": declared.studies,
        "opened": [{"trust": t, "studies": n} for t, n in declared.opened.items()],
    }


@router.get(
    "/timeline",
    summary="Every study of one person across trusts, as you may see",
    response_model=TimelineOut,
)
def timeline(
    request: Request,
    nhs_number: str = Query(
        "", description="The patient's NHS number.", pattern=r"^[0-9 -]{0,16}$"
    ),
    patient: str = Query(
        "",
        description="Or one of their records: issuer/patient ID.",
        pattern=PRINTABLE,
        max_length=130,
    ),
) -> dict[str, Any]:
    """Studies of all records linked to the person, newest first, filtered by the access
    policy; ``hidden_at`` names partner trusts holding studies you may not see yet
    (break-glass, or a relationship, opens them). Other trusts are never named."""
    archive, principal = _me(request)
    PatientNamed(nhs_number=nhs_number, patient=patient).check()
    found = timeline_of.of_person(archive, principal, nhs_number=nhs_number, patient=patient)
    return {"studies": found.studies, "hidden_at": found.hidden_at}


@router.get(
    "/audit",
    summary="Audit search (auditors and region administrators)",
    response_model=list[AuditEventOut],
)
async def audit_search(
    request: Request,
    patient: str = Query(
        "", description="Record issuer/patient ID.", pattern=PRINTABLE, max_length=130
    ),
    nhs_number: str = Query(
        "", description="Every record of this NHS number.", pattern=r"^[0-9 -]{0,16}$"
    ),
    user: str = Query(
        "", description="What this user or AE did.", pattern=PRINTABLE, max_length=128
    ),
    study: str = Query("", description="Study Instance UID.", pattern=r"^[0-9.]{0,64}$"),
    limit: int = Query(200, ge=1, le=10_000),
) -> list[dict[str, Any]]:
    archive, principal = _me(request)
    checks.require_role(principal, Role.AUDITOR, Role.REGION_ADMIN)
    await run_in_threadpool(archive.writer.flush)  # events of reads are queued, not awaited
    events = await run_in_threadpool(
        audit.search,
        archive.engine,
        patient=patient,
        nhs_number=nhs_number,
        actor=user,
        study_uid=study,
        limit=limit,
    )
    detail = {"audit_search": {"patient": patient, "nhs_number": nhs_number, "user": user}}
    await run_in_threadpool(
        trail.record,
        archive.writer.post,
        principal,
        audit.Kind.QUERY,
        audit.Outcome.SUCCESS,
        trail.Touched(study_uid=study, patient=patient, nhs_number=nhs_number),
        detail,
    )
    return [e.as_dict() for e in events]
