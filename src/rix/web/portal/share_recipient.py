"""The recipient's side of a second-opinion link: open it, give the PIN, see the shared
studies, open them in the viewer, download them when allowed, and send an opinion back.

No account is needed, so these routes are public; what they reach is the share's own
session (``rix.sharing.sessions``), and every study route passes the same ``check_study`` as the
portal and DICOMweb, under the share's scope. Answers carry ``Referrer-Policy:
no-referrer`` and ``no-store``; the link's token arrives only in a POST body (from the
URL fragment, which browsers never send), never in a URL the server or a proxy logs.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rix import access
from rix.access import share_rules, trail
from rix.errors import AccessDenied, RixError
from rix.index import queries
from rix.index.attributes import BY_KEYWORD, Level
from rix.sharing import opinions, pins, sessions
from rix.web import csrf
from rix.web.auth import SHARE_COOKIE, caller, check_study, source_of
from rix.web.context import archive_of
from rix.web.portal import pages
from rix.web.portal.study import zip_response

router = APIRouter(include_in_schema=False)
HEADERS = {**pages.HEADERS, "Referrer-Policy": "no-referrer"}


def _render(
    request: Request, template: str, context: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    secret = request.cookies.get(SHARE_COOKIE, "")
    return pages.render(request, template, context, status=status, secret=secret, headers=HEADERS)


def _closed(request: Request, exc: RixError) -> HTMLResponse:
    response = _render(request, "share_closed.html", {"reason": exc.reason}, status=exc.http_status)
    response.delete_cookie(SHARE_COOKIE, path="/")
    return response


def _session(request: Request) -> sessions.Session | None:
    with archive_of(request).engine.connect() as conn:
        secret = request.cookies.get(SHARE_COOKIE, "")
        return sessions.session_of(conn, secret, with_studies=True)


async def _form(request: Request) -> dict[str, str]:
    """A share page's form, with the CSRF token of the share's session."""
    form = await pages.fields_of(request)
    csrf.check(request, request.cookies.get(SHARE_COOKIE, ""), form.get(csrf.FIELD, ""))
    return form


@router.get("/s", response_class=HTMLResponse)
def opening(request: Request) -> HTMLResponse:
    """The link's page: its script posts the token from the fragment (``share.js``)."""
    return _render(request, "share_open.html", {})


@router.post("/s")
async def open_link(request: Request) -> Response:
    """Exchange the token for a session cookie; then the PIN, or the studies."""
    if not csrf.same_origin(request):
        raise AccessDenied("links are opened from rix's own page")
    form = await pages.fields_of(request)
    try:
        share, secret = await run_in_threadpool(
            sessions.open_link, archive_of(request), form.get("token", "")[:200], source_of(request)
        )
    except RixError as exc:
        return _closed(request, exc)
    target = "/share/pin" if share.has_pin else "/share"
    response = RedirectResponse(target, status_code=303, headers=HEADERS)
    response.set_cookie(
        SHARE_COOKIE,
        secret,
        max_age=int(sessions.SESSION_SECONDS),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.get("/share/pin", response_class=HTMLResponse)
def pin_page(request: Request) -> Response:
    found = _session(request)
    if found is None:
        return _ended(request)
    if found.verified:
        return RedirectResponse("/share", status_code=303, headers=HEADERS)
    return _render(request, "share_pin.html", {"share": found.share, "error": ""})


@router.post("/share/pin", response_class=HTMLResponse)
async def pin(request: Request) -> Response:
    form = await _form(request)
    archive = archive_of(request)
    secret = request.cookies.get(SHARE_COOKIE, "")
    try:
        await run_in_threadpool(
            pins.check, archive, secret, form.get("pin", "")[:32], source_of(request)
        )
    except AccessDenied as exc:
        found = _session(request)
        if found is None:
            return _ended(request)
        context = {"share": found.share, "error": exc.reason}
        return _render(request, "share_pin.html", context, status=403)
    except RixError as exc:
        return _closed(request, exc)
    return RedirectResponse("/share", status_code=303, headers=HEADERS)


def _ended(request: Request) -> HTMLResponse:
    """A session that opens nothing: its share's state when the share is closed (a
    locked share is 423 whichever page is asked), else the session has ended (401)."""
    with archive_of(request).engine.connect() as conn:
        refusal = sessions.why_closed(conn, request.cookies.get(SHARE_COOKIE, ""))
    if refusal is not None:
        return _closed(request, refusal)
    reason = "This session has ended, or the link was closed. Open the link from your email again."
    response = _render(request, "share_closed.html", {"reason": reason}, status=401)
    response.delete_cookie(SHARE_COOKIE, path="/")
    return response


@router.get("/share", response_class=HTMLResponse)
def landing(request: Request, sent: str = "") -> Response:
    """The shared studies, who shared them and why, and the opinion form."""
    found = _session(request)
    if found is None:
        return _ended(request)
    if not found.verified:
        return RedirectResponse("/share/pin", status_code=303, headers=HEADERS)
    principal = caller(request)
    scope = access.scope(principal)
    archive = archive_of(request)
    asked = "\\".join(found.share.study_uids)  # a UID list: one statement (PS3.4 C.2.2.2.2)
    keys = [queries.Match(attribute=BY_KEYWORD["StudyInstanceUID"], value=asked)]
    with archive.engine.connect() as conn:
        rows = list(queries.find(conn, Level.STUDY, keys, scope=scope))
    # the list names the patient: audited as the query it is, findable by NHS number
    trail.record_query(archive.writer.post, principal, Level.STUDY, keys, rows)
    rows.sort(key=lambda r: r.get("StudyDate") or "", reverse=True)
    context = {
        "share": found.share,
        "studies": rows,
        "uids": ",".join(r["StudyInstanceUID"] for r in rows),
        "sent": sent == "1",
    }
    return _render(request, "share.html", context)


@router.post("/share/opinion")
async def opinion(request: Request) -> Response:
    form = await _form(request)
    found = _session(request)
    if found is None or not found.verified:
        return _ended(request)
    try:
        await run_in_threadpool(
            lambda: opinions.add(
                archive_of(request),
                found,
                study_uid=form.get("study", "")[:64],
                text=form.get("opinion", ""),
                key_spec=form.get("key_images", "")[:2000],
                source=source_of(request),
            )
        )
    except RixError as exc:
        return _render(request, "share_closed.html", {"reason": exc.reason}, status=exc.http_status)
    return RedirectResponse("/share?sent=1", status_code=303, headers=HEADERS)


@router.get("/share/studies/{study}/download")
async def download(request: Request, study: str) -> Response:
    """The same download as the portal's, for a share that allows it."""
    found = _session(request)
    if found is None or not found.verified:
        return _ended(request)
    try:
        principal = caller(request)
        share_rules.require_download(principal)
        check_study(request, study)
    except RixError as exc:
        return _render(request, "share_closed.html", {"reason": exc.reason}, status=exc.http_status)
    return await zip_response(request, principal, study)


@router.post("/share/leave")
async def leave(request: Request) -> Response:
    await _form(request)
    secret = request.cookies.get(SHARE_COOKIE, "")
    if secret:
        await run_in_threadpool(sessions.end_session, archive_of(request), secret)
    response = _render(
        request, "share_closed.html", {"reason": "You have left the shared studies."}
    )
    response.delete_cookie(SHARE_COOKIE, path="/")
    return response
