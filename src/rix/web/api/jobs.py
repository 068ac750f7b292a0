"""``/api/jobs``, ``/api/transfers``, ``/api/prefetch`` and ``/api/rules``: the job
machinery over HTTP, for the portal's pages and scripts. Checks and audit live in
``rix.routing.manage`` and ``rix.routing.transfer``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from pydantic import Field, StringConstraints

from rix.errors import Conflict
from rix.jobs.queue import Priority, State
from rix.routing import manage, prefetch, rules, transfer
from rix.web.auth import principal_of
from rix.web.context import archive_of
from rix.web.fields import PRINTABLE, Answer, Code, PatientNamed, RowId, Text

router = APIRouter(prefix="/api", tags=["jobs"])
PriorityName = Annotated[str, StringConstraints(pattern="^(routine|urgent|emergency)$")]
Modality = Annotated[str, StringConstraints(pattern=PRINTABLE, min_length=1, max_length=16)]


class TransferIn(PatientNamed):
    to_trust: Code
    from_trust: Annotated[str, StringConstraints(pattern=PRINTABLE, max_length=16)] = ""
    days: int | None = Field(None, ge=0, le=36500)
    priority: PriorityName = "urgent"
    reference: Text = ""


class PrefetchIn(PatientNamed):
    trust: Code
    modalities: list[Modality] = Field(default_factory=list, max_length=16)
    body_parts: list[Modality] = Field(default_factory=list, max_length=16)
    last: int = Field(3, ge=1, le=50)
    priority: PriorityName = "routine"


class JobOut(Answer):
    """A durable job (``rix.jobs``); times are Unix seconds."""

    id: int
    kind: str
    state: State
    priority: int
    label: str
    parent: int | None
    attempts: int
    created_at: float
    run_at: float
    started_at: float | None
    finished_at: float | None
    done: int
    total: int
    last_error: str


class DeliveriesOut(Answer):
    done: int
    of: int
    instances: int


class JobDetailOut(JobOut):
    deliveries: DeliveriesOut


class QueuedOut(Answer):
    job: int
    progress: str  # where to follow it: /api/jobs/{job}


class RulesOut(Answer):
    rules: list[str]


TOML = {200: {"content": {"application/toml": {"schema": {"type": "string"}}}}}


@router.get("/jobs", summary="Jobs, newest first (administrators)", response_model=list[JobOut])
def list_jobs(
    request: Request,
    state: Annotated[list[State] | None, Query()] = None,
    kind: Annotated[str, Query(max_length=32)] = "",
    parent: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    found = manage.list_jobs(
        archive_of(request),
        principal_of(request),
        states=state or (),
        kind=kind,
        parent_pk=parent,
        limit=limit,
    )
    return [manage.as_dict(j) for j in found]


@router.get(
    "/jobs/{job_id}", summary="One job, with its deliveries' progress", response_model=JobDetailOut
)
def job(request: Request, job_id: RowId) -> dict[str, Any]:
    return manage.job_detail(archive_of(request), principal_of(request), job_id)


@router.post(
    "/jobs/{job_id}/retry", summary="Run a failed, dead or waiting job now", response_model=JobOut
)
def retry(request: Request, job_id: RowId) -> dict[str, Any]:
    return manage.as_dict(manage.retry_job(archive_of(request), principal_of(request), job_id))


@router.post(
    "/jobs/{job_id}/cancel",
    summary="Cancel a job and its unfinished deliveries",
    response_model=JobOut,
)
def cancel(request: Request, job_id: RowId) -> dict[str, Any]:
    return manage.as_dict(manage.cancel_job(archive_of(request), principal_of(request), job_id))


@router.post(
    "/transfers",
    status_code=202,
    summary="A patient moves: send their images",
    response_model=QueuedOut,
)
def request_transfer(request: Request, body: TransferIn) -> dict[str, Any]:
    body.check()
    pk = transfer.request(
        archive_of(request),
        principal_of(request),
        to_trust=body.to_trust,
        from_trust=body.from_trust,
        nhs_number=body.nhs_number,
        patient=body.patient,
        days=body.days,
        priority=Priority.named(body.priority),
        reference=body.reference,
    )
    return {"job": pk, "progress": f"/api/jobs/{pk}"}


@router.post(
    "/prefetch",
    status_code=202,
    summary="Have a patient's priors ready at a trust",
    response_model=QueuedOut,
)
def request_prefetch(request: Request, body: PrefetchIn) -> dict[str, Any]:
    body.check()
    pk = prefetch.request(
        archive_of(request),
        principal_of(request),
        trust=body.trust,
        nhs_number=body.nhs_number,
        patient=body.patient,
        modalities=body.modalities,
        body_parts=body.body_parts,
        last=body.last,
        priority=Priority.named(body.priority),
    )
    return {"job": pk, "progress": f"/api/jobs/{pk}"}


@router.get(
    "/rules",
    summary="The routing rules in force, as TOML",
    response_class=PlainTextResponse,
    responses=TOML,  # type: ignore[arg-type]
)
def get_rules(request: Request) -> PlainTextResponse:
    found = manage.rules_in_force(archive_of(request), principal_of(request))
    return PlainTextResponse(rules.to_toml(found), media_type="application/toml")


@router.put(
    "/rules",
    summary="Replace the routing rules (region-admin; TOML body)",
    response_model=RulesOut,
)
async def put_rules(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > 1 << 20:
        raise Conflict("routing rules are at most 1 MiB of TOML")
    loaded = await run_in_threadpool(
        manage.load_rules, archive_of(request), principal_of(request), body.decode("utf-8")
    )
    return {"rules": [r.name for r in loaded]}
