"""EPR launch: IHE Invoke Image Display (IID, IHE RAD TF-2 4.106).

The EPR opens ``/IHEInvokeImageDisplay?requestType=STUDY&studyUID=...`` (or
``accessionNumber=``) or ``requestType=PATIENT&patientID=ID^^^ISSUER``; after sign-in
(the same session as the portal) the user lands on the view asked for: the study in the
viewer, or the patient's regional timeline. Every study named is checked and audited
exactly as a typed URL would be (``rix.web.auth.check_study``); nothing else decides.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from rix import access
from rix.access import Principal
from rix.errors import Conflict, NotFound
from rix.index import queries
from rix.index.attributes import BY_KEYWORD, Level
from rix.web.auth import check_study
from rix.web.context import archive_of
from rix.web.dicomweb.errors import BadRequest
from rix.web.portal import pages

router = APIRouter(include_in_schema=False)
User = Annotated[Principal, Depends(pages.user)]
MAX_VALUES = 20


def _list(value: str) -> list[str]:
    """IID parameters carry several values comma-separated (RAD TF-2 4.106.4.1.2)."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    if len(items) > MAX_VALUES:
        raise BadRequest(f"at most {MAX_VALUES} values per parameter")
    return items


def patient_ref(value: str, default_issuer: str) -> str:
    """``ID^^^AUTHORITY`` (HL7 CX, as IID sends it) as issuer/ID. The authority's
    namespace ID (before ``&``) names the issuer; without one the EPR is the user's
    trust's own, so its issuer applies."""
    identifier, _, authority = value.partition("^^^")
    namespace = authority.split("&", 1)[0]
    if not identifier or any(c in identifier for c in "^&\\"):
        raise BadRequest("patientID is ID^^^issuer")
    return f"{namespace or default_issuer}/{identifier}"


def _studies_by_accession(request: Request, me: Principal, numbers: list[str]) -> list[str]:
    match = queries.Match(attribute=BY_KEYWORD["AccessionNumber"], value="\\".join(numbers))
    with archive_of(request).engine.connect() as conn:
        rows = queries.find(conn, Level.STUDY, [match], scope=access.scope(me))
        return [r["StudyInstanceUID"] for r in rows]


@router.get("/IHEInvokeImageDisplay")
def invoke_image_display(
    request: Request,
    me: User,
    requestType: str = "",
    studyUID: str = "",
    accessionNumber: str = "",
    patientID: str = "",
) -> Response:
    kind = requestType.upper()
    if kind == "PATIENT":
        if not patientID:
            raise BadRequest("requestType=PATIENT needs patientID")
        issuer = me.trust.issuer if me.trust is not None else ""
        ref = patient_ref(patientID, issuer)
        return RedirectResponse(f"/timeline?patient={pages.url_part(ref)}", status_code=303)
    if kind != "STUDY":
        raise BadRequest("requestType is STUDY or PATIENT")
    uids = _list(studyUID)
    if accessionNumber:
        found = _studies_by_accession(request, me, _list(accessionNumber))
        if not found and not uids:
            raise NotFound("no study you may see has that accession number")
        uids += [u for u in found if u not in uids]
    if not uids:
        raise Conflict("requestType=STUDY needs studyUID or accessionNumber")
    for uid in uids:
        check_study(request, uid)  # 404 or 403, audited, as for a typed address
    return RedirectResponse("/viewer/viewer?StudyInstanceUIDs=" + ",".join(uids), status_code=303)
