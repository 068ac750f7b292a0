"""The study page (series with thumbnails and counts, the report when one is stored, and
the actions: open in the viewer, download, send to a DICOM destination of the user's
trust that stores, a PACS or a workstation), and the download itself.

Every route names ``{study}`` and is authorised by ``rix.web.auth.authorize_study``, the
check every DICOMweb route passes: a study the user may not see is a 403 page (404 when
there is none), audited, whatever address was typed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from rix import access
from rix.access import Principal, share_rules
from rix.errors import Conflict
from rix.index import queries
from rix.index.attributes import BY_KEYWORD, Level
from rix.region import trusts
from rix.retrieve import export
from rix.routing import manage
from rix.web.auth import authorize_study, source_of
from rix.web.context import archive_of
from rix.web.portal import pages
from rix.workflow import report_versions

router = APIRouter(include_in_schema=False)
User = Annotated[Principal, Depends(pages.user)]
# the page dependency first: without a session the browser goes to sign in, and a refusal
# is answered as a page
Authorised = [Depends(pages.user), Depends(authorize_study)]
REPORT_MODALITIES = {"SR": "Structured report", "DOC": "Document (PDF)"}


def _study_rows(
    request: Request, principal: Principal, study: str
) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    archive = archive_of(request)
    match = queries.Match(attribute=BY_KEYWORD["StudyInstanceUID"], value=study)
    scope = access.scope(principal)
    with archive.engine.connect() as conn:
        found = list(queries.find(conn, Level.STUDY, [match], scope=scope))
        series = list(queries.find(conn, Level.SERIES, [match], scope=scope))
        owner = queries.trust_of_study(conn, study)
        codes = {t.pk: t.code for t in trusts.all_trusts(conn)}
    series.sort(key=lambda s: (s.get("SeriesNumber") is None, s.get("SeriesNumber") or 0))
    return found[0], series, codes.get(owner, "") if owner is not None else ""


@router.get("/studies/{study}", response_class=HTMLResponse, dependencies=Authorised)
def study_page(request: Request, me: User, study: str, sent: str = "") -> Response:
    row, series, trust = _study_rows(request, me, study)
    destinations = manage.send_destinations(archive_of(request), me)
    reports = [s for s in series if s.get("Modality") in REPORT_MODALITIES]
    with archive_of(request).engine.connect() as conn:  # signed here (rix.workflow)
        written = report_versions.signed_versions(conn, study)
    return pages.render(
        request,
        "study.html",
        {
            "study": row,
            "series": series,
            "trust": trust,
            "reports": reports,
            "report_kinds": REPORT_MODALITIES,
            "written": written,
            "report_text": report_versions.current_text(written, written[-1]) if written else "",
            "destinations": destinations,
            "sent": sent[:16],  # an AE title, shown as text
            "patient_ref": f"{row['IssuerOfPatientID']}/{row['PatientID']}",
            "may_share": bool(me.roles & access.SHARE_ROLES),
        },
    )


@router.get("/studies/{study}/download", dependencies=Authorised)
async def download(request: Request, me: User, study: str) -> Response:
    share_rules.require_download(me)
    return await zip_response(request, me, study)


async def zip_response(request: Request, principal: Principal, study: str) -> Response:
    """A zip of the study with a DICOMDIR, streamed; its length is sent first, so the
    browser's download shows progress. Each file is the stored instance, byte for byte,
    except outside media reconciled to a local record, which carry that record's identity
    (``rix.export.zip_for_download``). Also a share's download (``rix.web.share``)."""
    archive = archive_of(request)
    found = await run_in_threadpool(
        export.zip_for_download, archive, [study], principal, source_of(request)
    )
    headers = {
        "Content-Disposition": 'attachment; filename="rix-study.zip"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if found.length is not None:
        headers["Content-Length"] = str(found.length)
    return StreamingResponse(found.chunks, media_type="application/zip", headers=headers)


@router.post("/studies/{study}/send", dependencies=Authorised)
async def send(request: Request, me: User, study: str) -> Response:
    """Queue the study for a DICOM destination of the user's trust that stores (a durable
    job: it is retried until delivered, and shown on the jobs page)."""
    form = await pages.form_of(request)
    title = form.get("destination", "").strip()
    if not title or len(title) > 16:
        raise Conflict("choose a destination")
    archive = archive_of(request)
    await run_in_threadpool(manage.send_study, archive, me, study, title)
    return RedirectResponse(f"/studies/{study}?sent={pages.url_part(title)}", status_code=303)
