"""What the region's routes (``rix.web.api.region``) answer, as ``/openapi.json`` declares
it: administration, the MPI, relationships, break-glass, the timeline and audit search."""

from __future__ import annotations

from typing import Any

from rix.region import aes
from rix.web.fields import Answer


class MeOut(Answer):
    name: str
    trust: str
    roles: list[str]


class SiteOut(Answer):
    code: str
    name: str


class TrustOut(Answer):
    code: str
    name: str
    issuer: str  # Issuer of Patient ID of the trust's records
    pacs: str | None  # the AE title its images are sent to


class TrustSitesOut(TrustOut):
    sites: list[SiteOut]


class AgreementOut(Answer):
    trusts: list[str]
    description: str
    names_before_claim: bool  # the shared worklist names patients before a claim


class TrustsOut(Answer):
    trusts: list[TrustSitesOut]
    agreements: list[AgreementOut]


class SiteAddedOut(Answer):
    trust: str
    code: str


class AgreementAddedOut(Answer):
    trusts: list[str]
    added: bool


class RemovedOut(Answer):
    removed: bool


class UserOut(Answer):
    username: str
    display_name: str
    email: str
    trust: str
    roles: list[str]
    active: bool


class UserAddedOut(Answer):
    username: str
    roles: list[str]


class TokenOut(Answer):
    token: str  # shown once


class RevokedOut(Answer):
    revoked: int


class DisabledOut(Answer):
    disabled: str


class AEOut(Answer):
    title: str
    host: str
    port: int
    trust: str
    kind: aes.Kind  # pacs and workstation store what is sent; a modality does not
    description: str


class AEAddedOut(Answer):
    title: str


class ReviewOut(Answer):
    id: int
    patient: str  # issuer/patient ID
    nhs_number: str
    kind: str
    detail: dict[str, Any]
    created_at: float


class DismissedOut(Answer):
    dismissed: int


class LinkedOut(Answer):
    person: int


class UnlinkedOut(Answer):
    unlinked: str


class NhsNumberOut(Answer):
    patient: str
    nhs_number: str
    link: str


class RelationshipOut(Answer):
    trust: str
    kind: str


class OpenedOut(Answer):
    trust: str
    studies: int  # the patient's studies held by that trust


class BreakGlassOut(Answer):
    """What a break-glass opened: trusts sharing with yours and the patient's studies each
    holds (one that would open nothing is refused, 403); ``expires_at``: Unix seconds."""

    expires_at: float
    studies: int
    opened: list[OpenedOut]


class TimelineStudyOut(Answer):
    """A study of the person's, as the caller may see it."""

    study_uid: str
    study_date: str  # YYYYMMDD
    description: str
    accession_number: str
    modalities: list[str]
    series: int
    instances: int
    trust: str
    patient: str  # issuer/patient ID


class TimelineOut(Answer):
    studies: list[TimelineStudyOut]
    hidden_at: list[str]  # partner trusts holding studies not shown yet


class AuditEventOut(Answer):
    """An audit event (``at``: Unix seconds; ``detail`` as recorded)."""

    id: int
    at: float
    kind: str
    outcome: str
    actor: str
    source: str
    trust: str
    patient: str
    nhs_number: str
    study_uid: str
    detail: dict[str, Any]
