"""The sender's side of second opinions: share studies of a patient, list shares with
every use of each link, read the opinions that came back, and revoke.

Who may do what is ``rix.access.share_rules`` (``require_share``, ``may_manage_share``); the
shares themselves are ``rix.sharing``; these routes only turn forms into calls and pages.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rix import access
from rix.access import Principal, share_rules
from rix.errors import Conflict
from rix.index import queries
from rix.index.database import begin_write
from rix.sharing import links, opinions
from rix.web.context import archive_of
from rix.web.portal import pages

router = APIRouter(include_in_schema=False)
User = Annotated[Principal, Depends(pages.user)]


def base_url(request: Request) -> str:
    """This origin as the browser sees it (behind a loopback proxy, its scheme)."""
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


def _patient_studies(request: Request, me: Principal, study_uid: str) -> list[dict[str, Any]]:
    """The other studies of the same patient the user may see: candidates to share with
    the one they started from."""
    with archive_of(request).engine.connect() as conn:
        return queries.studies_beside(conn, study_uid, scope=access.scope(me))


@router.get("/shares/new", response_class=HTMLResponse)
def new_share(request: Request, me: User, study: str = "") -> Response:
    share_rules.require_share(me)
    candidates = _patient_studies(request, me, study[:64])
    if not any(c["study_uid"] == study for c in candidates):
        raise Conflict("start a share from a study you can see")
    context = {
        "study": study,
        "candidates": candidates,
        "max_days": archive_of(request).settings.share_max_days,
        "error": "",
    }
    return pages.render(request, "share_new.html", context)


@router.post("/shares", response_class=HTMLResponse)
async def create(request: Request, me: User) -> Response:
    form = await pages.form_of(request)
    body = (await request.body()).decode("utf-8", "replace")
    chosen = _all_values(body, "studies")
    try:
        days = float(form.get("days", "7") or 7)
    except ValueError:
        raise Conflict("the expiry is a number of days") from None
    created = await run_in_threadpool(
        lambda: links.create(
            archive_of(request),
            me,
            study_uids=chosen,
            recipient_name=form.get("recipient_name", ""),
            recipient_email=form.get("recipient_email", ""),
            purpose=form.get("purpose", ""),
            base_url=base_url(request),
            days=days,
            may_download=form.get("download") == "on",
            with_pin=form.get("pin") == "on",
        )
    )
    return pages.render(request, "share_created.html", {"created": created})


def _all_values(body: str, name: str) -> list[str]:
    return parse_qs(body).get(name, [])[: links.MAX_STUDIES + 1]


@router.get("/shares", response_class=HTMLResponse)
def share_list(request: Request, me: User) -> Response:
    with archive_of(request).engine.connect() as conn:
        found = links.visible_to(conn, me)
    return pages.render(request, "shares.html", {"shares": found})


@router.get("/shares/{share_pk}", response_class=HTMLResponse)
def share_page(request: Request, me: User, share_pk: int) -> Response:
    archive = archive_of(request)
    with begin_write(archive.engine) as conn:
        share = links.managed(conn, me, share_pk)
        if share.owner_pk == me.user_pk:
            opinions.mark_seen(conn, share)
    views = links.views(archive, share)
    return pages.render(request, "share_detail.html", {"share": share, "views": views})


@router.post("/shares/{share_pk}/revoke")
async def revoke(request: Request, me: User, share_pk: int) -> Response:
    await pages.form_of(request)
    await run_in_threadpool(links.revoke, archive_of(request), me, share_pk)
    return RedirectResponse(f"/shares/{share_pk}", status_code=303)
