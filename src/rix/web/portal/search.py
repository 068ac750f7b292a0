"""Regional search, the patient timeline and break-glass, as pages.

The search takes what people have at hand: a name (any part, any case), a hospital
number, an NHS number, a date of birth; results are grouped by person and show which
trusts hold them. The timeline is ``rix.region.timeline``'s answer, the same as the API's;
what the user may not open is shown as held by that trust, with the break-glass form.
Each search and each timeline is one audited query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rix import access, audit
from rix.access import Principal, grounds, trail
from rix.admin import region
from rix.dataset import nhs
from rix.errors import Conflict
from rix.index import people
from rix.region import trusts
from rix.retrieve import timeline as timeline_of
from rix.web.context import archive_of
from rix.web.portal import pages
from rix.workflow import report_versions

router = APIRouter(include_in_schema=False)
User = Annotated[Principal, Depends(pages.user)]
PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]*$")


@dataclass(slots=True, kw_only=True)
class Person:
    """What one result row shows: a person and their records the user may know of."""

    key: str  # the timeline's query: nhs_number=... or patient=...
    name: str = ""
    birth_date: str = ""
    sex: str = ""
    nhs_number: str = ""
    records: list[people.Found] = field(default_factory=list)

    @property
    def trusts(self) -> list[tuple[str, bool]]:
        """(trust code, whether the user may open its studies), each trust once."""
        seen: dict[str, bool] = {}
        for r in self.records:
            code = r.trust_code or r.issuer or "no trust"
            seen[code] = seen.get(code, False) or r.visible > 0
        return sorted(seen.items())


def _terms(q: str, dob: str) -> tuple[str, str, str]:
    """(text, NHS number, birth date YYYYMMDD) from the search box and date field: ten
    digits that pass the NHS number check are an NHS number, anything else a name or
    hospital number."""
    q = q.strip()[:128]
    if not PRINTABLE.match(q):
        raise Conflict("the search contains control characters")
    birth = ""
    if dob:
        try:
            birth = date.fromisoformat(dob).strftime("%Y%m%d")
        except ValueError:
            raise Conflict("the date of birth is not a date (YYYY-MM-DD)") from None
    if nhs.is_valid(q):
        return "", nhs.normalise(q), birth
    return q, "", birth


def _group(found: list[people.Found]) -> list[Person]:
    persons: dict[str, Person] = {}
    for f in found:
        key = f"person:{f.person_pk}" if f.person_pk is not None else f"record:{f.pk}"
        person = persons.setdefault(key, Person(key=""))
        person.records.append(f)
        if f.visible > 0 and not person.name:  # demographics only from records shown
            person.name, person.birth_date, person.sex = f.name, f.birth_date, f.sex
        if f.nhs_number and not person.nhs_number:
            person.nhs_number = f.nhs_number
    for person in persons.values():
        first = person.records[0]
        person.key = (
            f"nhs_number={person.nhs_number}"
            if person.nhs_number and first.person_pk is not None
            else f"patient={pages.url_part(first.ref)}"
        )
    return list(persons.values())


@router.get("/search", response_class=HTMLResponse)
def search_page(request: Request, me: User, q: str = "", dob: str = "") -> Response:
    archive = archive_of(request)
    found: list[Person] = []
    error = ""
    try:
        text, nhs_number, birth = _terms(q, dob)
    except Conflict as exc:
        text, nhs_number, birth, error = "", "", "", exc.reason
    if text or nhs_number or birth:
        partners: frozenset[int] = frozenset()
        with archive.engine.connect() as conn:
            if me.trust is not None:
                partners = frozenset(conn.execute(trusts.partners(me.trust.pk)).scalars())
            rows = people.search(
                conn,
                text=text,
                nhs_number=nhs_number,
                birth_date=birth,
                scope=access.scope(me),
                partners=partners,
            )
        found = _group(rows)
        trail.record(
            archive.writer.post,
            me,
            audit.Kind.QUERY,
            audit.Outcome.SUCCESS,
            trail.Touched(nhs_number=nhs_number),
            {"patient_search": {"text": text, "birth_date": birth}, "records": len(rows)},
        )
    context = {"q": q, "dob": dob, "people": found, "searched": bool(q or dob), "error": error}
    partial = (
        request.headers.get("hx-request") == "true"
        and request.headers.get("hx-target") == "results"
    )
    return pages.render(request, "results.html" if partial else "search.html", context)


@router.get("/timeline", response_class=HTMLResponse)
def timeline_page(request: Request, me: User, nhs_number: str = "", patient: str = "") -> Response:
    archive = archive_of(request)
    if not (nhs_number or patient) or not PRINTABLE.match(patient) or len(patient) > 130:
        raise Conflict("name the patient by nhs_number or patient (issuer/ID)")
    if nhs_number and not re.fullmatch(r"[0-9]{10}", nhs_number):
        raise Conflict("an NHS number is ten digits")
    found = timeline_of.of_person(archive, me, nhs_number=nhs_number, patient=patient)
    who = found.records[0] if found.records else None
    with archive.engine.connect() as conn:  # the reports signed here (rix.workflow)
        reported = report_versions.statuses_of(conn, [s["study_uid"] for s in found.studies])
        glass = grounds.break_glass_in_force(conn, me, nhs_number=nhs_number, patient=patient)
    return pages.render(
        request,
        "timeline.html",
        {
            "timeline": found,
            "who": who,
            "nhs_number": nhs_number or (who.nhs_number if who else ""),
            "patient": patient,
            "may_break_glass": bool(me.roles & access.BREAK_GLASS_ROLES),
            "break_glass_hours": archive.settings.break_glass_hours,
            "reported": reported,
            "glass": glass,  # the user's break-glass of this patient, and what it opened
        },
    )


@router.post("/break-glass")
async def break_glass(request: Request, me: User) -> Response:
    """Opens the person's studies at partner trusts for ``break_glass_hours``; the reason
    goes to the audit trail and a security alert is raised (``rix.admin.region``). The
    timeline it returns to says what it opened; one that would open nothing is refused
    with the reason (403, the API's answer)."""
    form = await pages.form_of(request)
    reason = form.get("reason", "").strip()
    nhs_number = form.get("nhs_number", "")
    patient = form.get("patient", "")
    if not reason or not PRINTABLE.match(reason) or len(reason) > 1024:
        raise Conflict("break-glass needs a reason (one line, at most 1,024 characters)")
    archive = archive_of(request)
    await run_in_threadpool(
        region.break_glass,
        archive,
        me,
        reason=reason,
        nhs_number=nhs_number,
        patient=patient,
    )
    back = f"nhs_number={nhs_number}" if nhs_number else f"patient={pages.url_part(patient)}"
    return RedirectResponse(f"/timeline?{back}", status_code=303)
