"""Reporting pages: the shared worklist (``/worklist``), the report editor
(``/reports/{study}``) and the on-call rota (``/rota``).

A front end of ``rix.workflow``: the worklist and claims are ``reporting``'s, versions
and signing ``reports``', shifts ``rota``'s, each checking the caller and writing the
audit trail. Like the admin pages, changes answer 303 back to the page with a code of
what was done, never the values; a refusal shows the page again with the reason.

The editor works without script: a template is chosen with a GET (``?template=``) and
the text is posted with the button pressed (save draft, sign preliminary, sign final,
addendum, correction). ``reporting_worklist.js`` only fills the text from the template without a
reload and renews the claim while the page is open.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rix import access
from rix.access import Principal, checks
from rix.auth.users import Role
from rix.config import Priority
from rix.errors import Conflict, RixError
from rix.index import queries
from rix.region import trusts
from rix.web.context import archive_of
from rix.web.dicomweb.errors import check_uids
from rix.web.fields import RowId
from rix.web.portal import pages
from rix.workflow import (
    report_claims,
    report_templates,
    report_versions,
    reporting_worklist,
    reports,
    rota,
)

router = APIRouter(include_in_schema=False)
User = Annotated[Principal, Depends(pages.user)]
Short = Annotated[str, Query(max_length=64)]
FILTERS = (
    "trust",
    "site",
    "modality",
    "body_part",
    "priority",
    "subspecialty",
    "status",
    "min_age_hours",
)
DONE = {
    "draft": "Draft saved.",
    "preliminary": "Preliminary report signed.",
    "final": "Final report signed: it is being stored with the study and sent.",
    "addendum": "Addendum signed: it is being stored with the study and sent.",
    "corrected": "Corrected report signed: it is being stored with the study and sent.",
    "claimed": "You are reporting this study.",
    "released": "Study given back to the worklist.",
    "shift": "Shift added.",
    "shift-removed": "Shift removed.",
}
ROTA_DAYS = 7


def span(seconds: float) -> str:
    """A duration as people say it on a ward: 45 min, 5 h, 3 days."""
    seconds = abs(seconds)
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min"
    if seconds < 2 * 86400:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86400)} days"


def _hours(text: str) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise Conflict("age is a number of hours") from None
    if not 0 <= value <= 24 * 3650:
        raise Conflict("age is 0 to 87,600 hours")
    return value


def _trust_choices(request: Request, me: Principal) -> list[str]:
    """The trusts a radiologist's worklist spans: their own and its partners."""
    if me.trust is None:
        return []
    with archive_of(request).engine.connect() as conn:
        partners = set(conn.execute(trusts.partners(me.trust.pk)).scalars())
        found = trusts.all_trusts(conn)
    return [t.code for t in found if t.pk in partners or t.pk == me.trust.pk]


def _worklist_page(
    request: Request, me: Principal, chosen: dict[str, str], *, error: str = "", status: int = 200
) -> Response:
    archive = archive_of(request)
    filters = reporting_worklist.Filters.of(
        trusts=[chosen["trust"]],
        statuses=[chosen["status"]],
        site=chosen["site"],
        modality=chosen["modality"],
        body_part=chosen["body_part"],
        priority=chosen["priority"],
        subspecialty=chosen["subspecialty"],
        min_age_hours=_hours(chosen["min_age_hours"]),
    )
    items = reporting_worklist.worklist(archive, me, filters)
    context = {
        "items": items,
        "chosen": chosen,
        "trust_choices": _trust_choices(request, me),
        "priorities": list(Priority),
        "statuses": list(reporting_worklist.WorklistStatus),
        "error": error,
        "done": DONE.get(request.query_params.get("done", ""), ""),
        "span": span,
    }
    return pages.render(request, "worklist.html", context, status=status)


@router.get("/worklist", response_class=HTMLResponse)
def worklist_page(
    request: Request,
    me: User,
    trust: Short = "",
    site: Short = "",
    modality: Short = "",
    body_part: Short = "",
    priority: Short = "",
    subspecialty: Short = "",
    status: Short = "",
    min_age_hours: Short = "",
) -> Response:
    chosen = {
        "trust": trust,
        "site": site,
        "modality": modality,
        "body_part": body_part,
        "priority": priority,
        "subspecialty": subspecialty,
        "status": status,
        "min_age_hours": min_age_hours,
    }
    return _worklist_page(request, me, chosen)


def _back(form: dict[str, str]) -> dict[str, str]:
    return {k: form.get(k, "")[:64] for k in FILTERS}


@router.post("/worklist/claim")
async def claim(request: Request, me: User) -> Response:
    """Claim a study and open its report; refused (another holds it), the worklist again
    with the reason."""
    form = await pages.form_of(request)
    study = form.get("study", "")
    check_uids(study)
    try:
        await run_in_threadpool(report_claims.claim, archive_of(request), me, study)
    except Conflict as exc:
        return await run_in_threadpool(
            _worklist_page, request, me, _back(form), error=exc.reason, status=exc.http_status
        )
    return RedirectResponse(f"/reports/{study}?done=claimed", status_code=303)


@router.post("/worklist/release")
async def release(request: Request, me: User) -> Response:
    form = await pages.form_of(request)
    study = form.get("study", "")
    check_uids(study)
    await run_in_threadpool(report_claims.release, archive_of(request), me, study)
    query = urlencode({**{k: v for k, v in _back(form).items() if v}, "done": "released"})
    return RedirectResponse(f"/worklist?{query}", status_code=303)


# --- the report editor ---


def _editor(
    request: Request,
    me: Principal,
    study: str,
    *,
    template: str = "",
    entered: str | None = None,
    error: str = "",
    status: int = 200,
) -> Response:
    archive = archive_of(request)
    found = reports.read(archive, me, study)
    item = reporting_worklist.item_of(archive, me, study)
    if item is None:  # read() let it through: it left the worklist this very moment
        raise Conflict("this study is no longer on your worklist")
    with archive.engine.connect() as conn:
        held = report_claims.claim_of(conn, study)
        opens = queries.patient_of_study(conn, study, scope=access.scope(me)) is not None
    choices = report_templates.templates(archive)
    chosen = next((t for t in choices if t.name == template), None)
    draft = next((r for r in found if not r.signed), None)
    signed = [r for r in found if r.signed]
    finals = [r for r in signed if r.status in report_versions.FINALS]
    fitting = report_templates.template_for(
        choices, modalities=item.modalities, body_part=item.body_part
    )
    if entered is not None:
        text = entered
    elif chosen is not None:
        text = chosen.text
    elif draft is not None:
        text = draft.text
    else:
        text = fitting.text if fitting is not None and not finals else ""
    context = {
        "item": item,
        "held": held,
        "mine": held is not None and held.username == me.name,
        "opens": opens,  # the images: own trust, a claim, or a report written
        "signed": signed,
        "draft": draft,
        "finals": bool(finals),
        "templates": choices,
        "template": (chosen or (fitting if not finals else None)),
        "text": text,
        "error": error,
        "done": DONE.get(request.query_params.get("done", ""), ""),
        "current": {r.pk: report_versions.current_text(found, r) for r in signed},
        "span": span,
    }
    return pages.render(request, "report.html", context, status=status)


@router.get("/reports/{study}", response_class=HTMLResponse)
def report_page(request: Request, me: User, study: str, template: Short = "") -> Response:
    check_uids(study)
    return _editor(request, me, study, template=template)


@router.post("/reports/{study}")
async def write_report(request: Request, me: User, study: str) -> Response:
    check_uids(study)
    form = await pages.form_of(request)
    action = form.get("action", "")
    text = form.get("text", "")
    try:
        await run_in_threadpool(
            lambda: reports.save(
                archive_of(request),
                me,
                study,
                action=action,
                text=text,
                template=form.get("template", "")[:64],
            )
        )
    except Conflict as exc:
        return await run_in_threadpool(
            _editor, request, me, study, entered=text, error=exc.reason, status=exc.http_status
        )
    done = action if action in DONE else "draft"
    return RedirectResponse(f"/reports/{study}?done={done}", status_code=303)


# --- the rota ---


def _moment(text: str, name: str) -> float:
    """A ``datetime-local`` field (the server's local time) as seconds since the epoch."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise Conflict(f"{name} is a date and time") from None


def _rota_page(request: Request, me: Principal, *, error: str = "", status: int = 200) -> Response:
    archive = archive_of(request)
    now = time.time()
    found = rota.shifts(archive, start=now, days=ROTA_DAYS)
    days: dict[str, list[rota.Shift]] = {}
    for shift in found:
        day = time.strftime("%A %-d %b", time.localtime(max(shift.starts_at, now)))
        days.setdefault(day, []).append(shift)
    with archive.engine.connect() as conn:
        codes = [t.code for t in trusts.all_trusts(conn)]
    region = Role.REGION_ADMIN in me.roles
    context = {
        "on_now": [s for s in found if s.on_at(now)],
        "days": days,
        "keeper": checks.may_administer(me),
        "keeps": codes if region else [me.trust_code] if me.trust_code else [],
        "region": region,
        "error": error,
        "done": DONE.get(request.query_params.get("done", ""), ""),
        "rota_days": ROTA_DAYS,
    }
    return pages.render(request, "rota.html", context, status=status)


@router.get("/rota", response_class=HTMLResponse)
def rota_page(request: Request, me: User) -> Response:
    return _rota_page(request, me)


async def _rota_change(request: Request, me: Principal, change: Any, done: str) -> Response:
    form = await pages.form_of(request)
    try:
        await run_in_threadpool(change, form)
    except RixError as exc:
        return await run_in_threadpool(
            _rota_page, request, me, error=exc.reason, status=exc.http_status
        )
    return RedirectResponse(f"/rota?done={done}", status_code=303)


@router.post("/rota")
async def add_shift(request: Request, me: User) -> Response:
    archive = archive_of(request)

    def change(form: dict[str, str]) -> None:
        rota.add_shift(
            archive,
            me,
            username=form.get("username", "").strip()[:128],
            trust=form.get("trust", "")[:16],
            subspecialty=form.get("subspecialty", ""),
            starts_at=_moment(form.get("starts_at", ""), "start"),
            ends_at=_moment(form.get("ends_at", ""), "end"),
        )

    return await _rota_change(request, me, change, "shift")


@router.post("/rota/{shift_id}/remove")
async def remove_shift(request: Request, me: User, shift_id: RowId) -> Response:
    archive = archive_of(request)

    def change(form: dict[str, str]) -> None:
        del form
        rota.remove_shift(archive, me, shift_id)

    return await _rota_change(request, me, change, "shift-removed")
