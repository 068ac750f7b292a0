"""``/api/imports``: outside media from the browser, uploaded in resumable chunks, scanned
for the outside patients on them, reconciled to the user's own trust's records and stored
through the one ingest path (``rix.uploads``, ``rix.reconcile``).

1. ``POST /api/imports`` declares the files (name and size) and answers the upload's id.
2. ``PUT /api/imports/{id}/files/{n}?offset=`` sends a chunk of file ``n`` as raw bytes;
   after an interruption ``GET /api/imports/{id}`` says how much of each file arrived.
3. ``POST /api/imports/{id}/scan`` lists the outside patients and their studies.
4. ``GET /api/imports/{id}/candidates?q=`` searches the user's trust's records.
5. ``POST /api/imports/{id}/store`` with ``{"reconcile": {KEY: "issuer/ID" | "skip"}}``
   queues the store; ``GET /api/imports/{id}`` shows its progress, then the summary.

An upload is its maker's alone: anyone else, in any trust, is told it does not exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as FastApiPath
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, StringConstraints
from starlette.requests import ClientDisconnect

from rix.access import Principal, checks
from rix.archive import Archive
from rix.errors import Conflict, NotFound
from rix.ingest import reconcile, uploads
from rix.jobs import queue
from rix.web.auth import principal_of
from rix.web.context import archive_of
from rix.web.dicomweb.errors import PayloadTooLarge
from rix.web.fields import PRINTABLE, Answer, PatientRef

router = APIRouter(prefix="/api/imports", tags=["imports"])

UploadId = Annotated[str, FastApiPath(pattern=r"^[0-9a-f]{32}$")]
FileNumber = Annotated[int, FastApiPath(ge=0, lt=uploads.MAX_FILES)]
OutsideKey = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]


class FileIn(BaseModel):
    name: Annotated[str, StringConstraints(pattern=PRINTABLE, min_length=1, max_length=1024)]
    size: int = Field(ge=0, le=uploads.MAX_BYTES)


class UploadIn(BaseModel):
    files: list[FileIn] = Field(min_length=1, max_length=uploads.MAX_FILES)


class StoreIn(BaseModel):
    reconcile: dict[OutsideKey, PatientRef] = Field(max_length=1000)


class FileOut(Answer):
    n: int
    name: str
    size: int
    received: int


class ProblemOut(Answer):
    file: str
    reason: str


class OutsidePatientOut(Answer):
    """A patient found on the media, with the own trust's records of the same NHS number."""

    key: str  # what ``reconcile`` names in the store's body
    patient_id: str
    issuer: str
    name: str
    birth_date: str
    sex: str
    nhs_number: str
    suggested: list[str]  # issuer/patient ID
    studies: list[dict[str, Any]]
    instances: int


class ScanOut(Answer):
    patients: list[OutsidePatientOut]
    instances: int
    refused: list[ProblemOut]
    skipped: list[ProblemOut]


class ImportJobOut(Answer):
    id: int
    state: str
    done: int
    total: int
    error: str


class ImportOut(Answer):
    """An upload: what arrived, the scan, the choices, the store's progress and summary;
    times are Unix seconds."""

    id: str
    state: str
    created_at: float
    updated_at: float
    expires_at: float
    size: int
    received: int
    files: list[FileOut]
    scan: ScanOut | None
    reconcile: dict[str, str]
    job: ImportJobOut | None
    summary: dict[str, Any] | None


class ChunkOut(Answer):
    file: int
    received: int
    size: int
    complete: bool


class CandidateOut(Answer):
    patient: str  # issuer/patient ID
    patient_id: str
    issuer: str
    name: str
    birth_date: str
    sex: str
    nhs_number: str
    studies: int


class DeletedOut(Answer):
    deleted: str


def _context(request: Request) -> tuple[Archive, Principal, Path]:
    """The archive, the caller (who must be allowed to import) and the uploads folder."""
    archive, principal = archive_of(request), principal_of(request)
    checks.require_import(principal)
    return archive, principal, uploads.root(archive.settings.data)


def _owned(request: Request, upload_id: str) -> tuple[Archive, Principal, Path, uploads.Session]:
    archive, principal, base = _context(request)
    session = uploads.owned(base, upload_id, owner=principal.name, user_pk=principal.user_pk)
    return archive, principal, base, session


def _status(archive: Archive, base: Path, session: uploads.Session) -> dict[str, Any]:
    got = uploads.received(base, session) if session.state is not uploads.State.DONE else []
    files = [
        {"n": n, "name": f.name, "size": f.size, "received": got[n] if got else f.size}
        for n, f in enumerate(session.files)
    ]
    job = None
    if session.job is not None:
        with archive.engine.connect() as conn:
            try:
                found = queue.get(conn, session.job)
            except NotFound:
                found = None
        if found is not None:
            job = {
                "id": found.pk,
                "state": found.state.value,
                "done": found.done,
                "total": found.total,
                "error": found.last_error,
            }
    return {
        "id": session.id,
        "state": session.state.value,
        "created_at": session.created_at,
        "updated_at": session.updated_at,
        "expires_at": session.updated_at + archive.settings.import_expiry_hours * 3600,
        "size": session.size,
        "received": sum(f["received"] for f in files),
        "files": files,
        "scan": reconcile.public(session.scan),
        "reconcile": session.choices,
        "job": job,
        "summary": session.summary,
    }


@router.post(
    "",
    status_code=201,
    summary="Begin an import: declare the files to upload",
    response_model=ImportOut,
)
def create(request: Request, body: UploadIn) -> dict[str, Any]:
    """Files of a folder, a zip, or a CD's DICOMDIR and its files. The upload belongs to
    you and your trust; unfinished, it is deleted after ``import_expiry_hours``."""
    archive, principal, base = _context(request)
    reconcile.schedule_expiry(archive)
    session = uploads.create(
        base,
        owner=principal.name,
        user_pk=principal.user_pk,
        trust=principal.trust_code,
        files=[uploads.Declared(name=f.name, size=f.size) for f in body.files],
    )
    return _status(archive, base, session)


@router.put(
    "/{upload_id}/files/{number}",
    summary="Send a chunk of one file (raw bytes, application/octet-stream)",
    response_model=ChunkOut,
)
async def put_chunk(
    request: Request,
    upload_id: UploadId,
    number: FileNumber,
    offset: Annotated[int, Query(ge=0, le=uploads.MAX_BYTES)],
    sha256: Annotated[str, Query(pattern=r"^([0-9a-fA-F]{64})?$")] = "",
) -> dict[str, Any]:
    """Appended only at ``offset`` equal to the bytes received so far (else 409, saying
    where to resume), only whole (Content-Length) and, with ``sha256``, only intact; a
    refused chunk changes nothing."""
    _archive, _principal, base, session = await run_in_threadpool(_owned, request, upload_id)
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > uploads.MAX_CHUNK:
        raise PayloadTooLarge(f"a chunk is at most {uploads.MAX_CHUNK >> 20} MiB")
    body = bytearray()
    try:
        async for piece in request.stream():
            body += piece
            if len(body) > uploads.MAX_CHUNK:
                raise PayloadTooLarge(f"a chunk is at most {uploads.MAX_CHUNK >> 20} MiB")
    except ClientDisconnect:
        raise uploads.ChunkRefused(
            f"chunk truncated: the connection closed after {len(body)} bytes"
        ) from None
    have = await run_in_threadpool(
        uploads.write_chunk,
        base,
        session,
        number=number,
        offset=offset,
        data=bytes(body),
        length=None if declared is None else int(declared),
        sha256=sha256,
    )
    size = session.files[number].size
    return {"file": number, "received": have, "size": size, "complete": have == size}


@router.get(
    "/{upload_id}",
    summary="An import: bytes received per file, scan, progress",
    response_model=ImportOut,
)
def status(request: Request, upload_id: UploadId) -> dict[str, Any]:
    archive, _principal, base, session = _owned(request, upload_id)
    return _status(archive, base, session)


@router.post(
    "/{upload_id}/scan",
    summary="The outside patients and studies on the media",
    response_model=ScanOut,
)
def scan(request: Request, upload_id: UploadId) -> dict[str, Any]:
    """Every file must have arrived. Nothing is stored; files that are not DICOM, broken
    zips and unsafe zip names are listed as refused with the reason."""
    archive, principal, base, session = _owned(request, upload_id)
    if session.state not in (uploads.State.RECEIVING, uploads.State.SCANNED):
        raise Conflict(f"the upload is {session.state.value}")
    found = reconcile.scan(archive, principal, base=base, session=session)
    uploads.transition(
        base,
        upload_id,
        (uploads.State.RECEIVING, uploads.State.SCANNED),
        state=uploads.State.SCANNED,
        scan=found,
    )
    public = reconcile.public(found)
    assert public is not None
    return public


@router.get(
    "/{upload_id}/candidates",
    summary="Your trust's patient records, to choose from",
    response_model=list[CandidateOut],
)
def candidates(
    request: Request,
    upload_id: UploadId,
    q: Annotated[
        str,
        Query(
            description="NHS number, hospital number, birth date (YYYYMMDD) and/or name.",
            pattern=PRINTABLE,
            max_length=128,
        ),
    ] = "",
) -> list[dict[str, Any]]:
    archive, principal, _base, session = _owned(request, upload_id)
    return reconcile.candidates(archive, principal, query=q, upload_id=session.id)


@router.post(
    "/{upload_id}/store",
    status_code=202,
    summary="Store, reconciled to your records",
    response_model=ImportOut,
)
def store(request: Request, upload_id: UploadId, body: StoreIn) -> dict[str, Any]:
    """``reconcile`` names, for every outside patient of the scan (by its ``key``), a
    record of your trust as ``issuer/patient ID``, or ``skip``. The instances are stored
    as received, indexed under that record; progress and summary at ``GET``."""
    archive, principal, base, session = _owned(request, upload_id)
    session = reconcile.start_store(
        archive, principal, base=base, session=session, choices=dict(body.reconcile)
    )
    return _status(archive, base, session)


@router.delete(
    "/{upload_id}",
    summary="Abandon an import, or clear a finished one",
    response_model=DeletedOut,
)
def delete(request: Request, upload_id: UploadId) -> dict[str, str]:
    _archive, _principal, base, session = _owned(request, upload_id)
    if session.state is uploads.State.STORING:
        raise Conflict("the upload is being stored; it is cleared when the store finishes")
    uploads.delete(base, session.id)
    return {"deleted": session.id}
