"""``/api/worklist``, ``/api/reports`` and ``/api/rota``: the shared reporting worklist,
claims, report versions and the on-call rota over HTTP, for scripts and other systems.

A front end only: who may do what, and the audit trail, are ``rix.workflow``'s and
``rix.access``'s. Routes naming a study are not behind ``authorize_study``: a partner
trust's study is on a radiologist's worklist before its images are open to them, and
claiming it is what opens them (``access.radiology.require_reportable`` decides instead).
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, StringConstraints

from rix.config import Priority
from rix.web.auth import principal_of
from rix.web.context import archive_of
from rix.web.dicomweb.errors import check_uids
from rix.web.fields import PRINTABLE, Answer, Code, Name, RowId
from rix.workflow import report_claims, reporting_worklist, reports, rota
from rix.workflow.report_templates import templates

router = APIRouter(prefix="/api", tags=["reporting"])
Short = Annotated[str, Query(pattern=PRINTABLE, max_length=64)]
Hours = Annotated[float | None, Query(ge=0, le=24 * 3650)]


class ReportIn(BaseModel):
    action: Literal["draft", "preliminary", "final", "addendum", "corrected"]
    text: str = Field("", max_length=reports.MAX_TEXT)
    template: Annotated[str, StringConstraints(pattern=PRINTABLE, max_length=64)] = ""


class ShiftIn(BaseModel):
    username: Name
    trust: Annotated[str, StringConstraints(pattern=PRINTABLE, max_length=16)] = ""
    subspecialty: Annotated[str, StringConstraints(pattern=PRINTABLE, max_length=32)] = ""
    starts_at: float = Field(ge=0)
    ends_at: float = Field(ge=0)


class WorklistItemOut(Answer):
    """A study on the shared worklist; times are Unix seconds."""

    study_uid: str
    trust: str
    site: str
    patient_name: str  # DICOM PN
    patient: str  # issuer/patient ID
    nhs_number: str
    description: str
    accession_number: str
    modalities: list[str]
    body_part: str
    priority: Priority
    subspecialty: str
    status: reporting_worklist.WorklistStatus
    arrived_at: float
    due_at: float
    age_hours: float
    overdue: bool
    claimed_by: str
    claim_expires_at: float | None
    order: int | None  # the order's id (/api/orders/{id})
    # a partner's patient, unnamed (patient_name, patient, nhs_number empty) until claimed
    names_hidden: bool


class WorklistOut(Answer):
    studies: list[WorklistItemOut]


class ClaimOut(Answer):
    study_uid: str
    claimed_by: str
    claimed_at: float
    expires_at: float


class ReleasedOut(Answer):
    study_uid: str
    released: bool


class ReportOut(Answer):
    """A version of a study's report (``parent``: the version it amends)."""

    id: int
    study_uid: str
    status: str
    author: str
    author_name: str
    template: str
    text: str
    parent: int | None
    sr_instance_uid: str | None
    created_at: float
    updated_at: float
    signed_at: float | None


class ReportVersionsOut(Answer):
    study_uid: str
    versions: list[ReportOut]


class TemplateOut(Answer):
    name: str
    modality: str
    body_part: str
    text: str


class TemplatesOut(Answer):
    templates: list[TemplateOut]


class ShiftOut(Answer):
    id: int
    username: str
    name: str
    trust: str  # '': the whole region
    subspecialty: str
    starts_at: float
    ends_at: float


class RotaOut(Answer):
    shifts: list[ShiftOut]


class ShiftAddedOut(Answer):
    id: int


class ShiftRemovedOut(Answer):
    id: int
    removed: bool


@router.get(
    "/worklist",
    summary="Studies to report across trusts, most urgent first",
    response_model=WorklistOut,
)
def worklist(
    request: Request,
    trust: Annotated[list[Code] | None, Query()] = None,
    site: Short = "",
    modality: Short = "",
    body_part: Short = "",
    priority: Short = "",
    subspecialty: Short = "",
    status: Annotated[list[str] | None, Query(max_length=8)] = None,
    min_age_hours: Hours = None,
    max_age_hours: Hours = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = reporting_worklist.LIMIT,
) -> dict[str, Any]:
    filters = reporting_worklist.Filters.of(
        trusts=trust or (),
        statuses=status or (),
        site=site,
        modality=modality,
        body_part=body_part,
        priority=priority,
        subspecialty=subspecialty,
        min_age_hours=min_age_hours,
        max_age_hours=max_age_hours,
        limit=limit,
    )
    found = reporting_worklist.worklist(archive_of(request), principal_of(request), filters)
    return {"studies": [item.as_dict() for item in found]}


def _claim(held: report_claims.Claim) -> dict[str, Any]:
    return {
        "study_uid": held.study_uid,
        "claimed_by": held.username,
        "claimed_at": held.claimed_at,
        "expires_at": held.expires_at,
    }


@router.post(
    "/worklist/{study}/claim",
    summary="Claim a study to report it (or renew your claim)",
    response_model=ClaimOut,
)
async def claim(request: Request, study: str) -> dict[str, Any]:
    check_uids(study)
    held = await run_in_threadpool(
        report_claims.claim, archive_of(request), principal_of(request), study
    )
    return _claim(held)


@router.delete(
    "/worklist/{study}/claim", summary="Give a claimed study back", response_model=ReleasedOut
)
async def release(request: Request, study: str) -> dict[str, Any]:
    check_uids(study)
    released = await run_in_threadpool(
        report_claims.release, archive_of(request), principal_of(request), study
    )
    return {"study_uid": study, "released": released}


@router.get(
    "/reports/{study}",
    summary="A study's report versions, and your draft",
    response_model=ReportVersionsOut,
)
async def report_versions(request: Request, study: str) -> dict[str, Any]:
    check_uids(study)
    found = await run_in_threadpool(reports.read, archive_of(request), principal_of(request), study)
    return {"study_uid": study, "versions": [r.as_dict() for r in found]}


@router.post(
    "/reports/{study}",
    status_code=201,
    summary="Save a draft, or sign: preliminary, final, addendum or corrected",
    response_model=ReportOut,
)
async def write_report(request: Request, study: str, body: ReportIn) -> dict[str, Any]:
    check_uids(study)
    saved = await run_in_threadpool(
        lambda: reports.save(
            archive_of(request),
            principal_of(request),
            study,
            action=body.action,
            text=body.text,
            template=body.template,
        )
    )
    return saved.as_dict()


@router.get(
    "/report-templates",
    summary="Report templates by modality and body part",
    response_model=TemplatesOut,
)
def report_templates(request: Request) -> dict[str, Any]:
    found = templates(archive_of(request))
    return {
        "templates": [
            {"name": t.name, "modality": t.modality, "body_part": t.body_part, "text": t.text}
            for t in found
        ]
    }


@router.get("/rota", summary="The on-call reporting rota", response_model=RotaOut)
def rota_shifts(
    request: Request,
    start: Annotated[float | None, Query(ge=0)] = None,
    days: Annotated[float, Query(gt=0, le=62)] = 7,
) -> dict[str, Any]:
    principal_of(request)
    found = rota.shifts(
        archive_of(request), start=time.time() if start is None else start, days=days
    )
    return {"shifts": [s.as_dict() for s in found]}


@router.post(
    "/rota",
    status_code=201,
    summary="Put a radiologist on the rota (administrators)",
    response_model=ShiftAddedOut,
)
def add_shift(request: Request, body: ShiftIn) -> dict[str, Any]:
    pk = rota.add_shift(
        archive_of(request),
        principal_of(request),
        username=body.username,
        trust=body.trust,
        subspecialty=body.subspecialty,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
    )
    return {"id": pk}


@router.delete(
    "/rota/{shift_id}",
    summary="Take a shift off the rota (administrators)",
    response_model=ShiftRemovedOut,
)
def remove_shift(request: Request, shift_id: RowId) -> dict[str, Any]:
    rota.remove_shift(archive_of(request), principal_of(request), shift_id)
    return {"id": shift_id, "removed": True}
