"""Rendering and guarding portal pages.

Every page needs a signed-in user: without one the browser is sent to ``/login`` and back
(``SignInFirst``). Templates are autoescaped (Jinja2 ``select_autoescape``), so patient
names and descriptions written by modalities are text, never markup; and the pages'
Content-Security-Policy runs only this origin's script files, no inline script or style,
so even text that escaped escaping could not run. Failures (``RixError``) on a page are
answered as a page with the same status and reason as the API would give.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context

from rix import times
from rix.access import Principal, checks
from rix.auth.users import Role
from rix.errors import RixError, Unauthenticated
from rix.web import csrf
from rix.web.auth import SESSION_COOKIE, caller
from rix.web.context import archive_of

STATIC = Path(__file__).parent / "static"
HTMX = "htmx.min.js"  # from npm htmx.org, put in portal_assets_dir by `rix viewer install`
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages show patient data: never kept by the browser
}

ENVIRONMENT = Environment(
    loader=PackageLoader("rix.web.portal", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

router = APIRouter(include_in_schema=False)


class SignInFirst(Exception):
    """Raised by ``user`` for a caller without a session: answered by a redirect."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


def user(request: Request) -> Principal:
    """The signed-in user of a page request (a dependency of every page route)."""
    request.state.portal = True
    try:
        return caller(request)
    except Unauthenticated as exc:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInFirst(target) from exc


async def fields_of(request: Request) -> dict[str, str]:
    """A submitted form (urlencoded), unchecked: only the first value of each field
    counts; fields are short by construction."""
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


async def form_of(request: Request) -> dict[str, str]:
    """A submitted form, after its CSRF token is checked (``rix.web.csrf``)."""
    form = await fields_of(request)
    secret = request.cookies.get(SESSION_COOKIE, "")
    if secret and not request.headers.get("authorization"):
        csrf.check(request, secret, form.get(csrf.FIELD, ""))
    return form


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    secret: str | None = None,
    headers: Mapping[str, str] = HEADERS,
) -> HTMLResponse:
    """A page; its forms' CSRF token is the signed-in session's, or ``secret``'s (a share
    link's session, ``rix.web.share``)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if secret is None:
        secret = request.cookies.get(SESSION_COOKIE, "")
    page = ENVIRONMENT.get_template(template).render(
        **context,
        me=principal,
        csrf_token=csrf.token_for(secret) if secret else "",
        may_administer=principal is not None and checks.may_administer(principal),
        sees_images=principal is not None and principal.sees_images,
        htmx=request.app.state.archive.settings.portal_assets_folder.joinpath(HTMX).is_file(),
        zone=request.app.state.archive.settings.display_timezone,
        path=request.url.path,
    )
    return HTMLResponse(page, status_code=status, headers=dict(headers))


def error_page(request: Request, exc: RixError) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {"status": exc.http_status, "reason": exc.reason},
        status=exc.http_status,
    )


def sign_in_redirect(request: Request, exc: SignInFirst) -> Response:
    del request
    return RedirectResponse("/login?next=" + quote(exc.target, safe=""), status_code=303)


def is_page(request: Request) -> bool:
    return bool(getattr(request.state, "portal", False))


def date_text(value: str) -> str:
    """A DICOM DA (YYYYMMDD) as people read it in the UK: 7 Mar 2026."""
    if len(value) != 8 or not value.isdigit():
        return value
    try:
        return time.strftime("%-d %b %Y", time.strptime(value, "%Y%m%d"))
    except ValueError:
        return value


def when(moment: float | None, zone: tzinfo) -> str:
    """A time as people here read it, its zone named: 7 Mar 2026 14:05 GMT."""
    return "" if moment is None else times.shown(moment, zone)


@pass_context
def when_here(context: Context, moment: float | None) -> str:
    """``when`` in ``display_timezone``, which ``render`` gives every page as ``zone``."""
    return when(moment, context["zone"])


def person_name(value: str) -> str:
    """A DICOM PN (Family^Given^Middle^Prefix^Suffix) as ``FAMILY, Given Middle``."""
    family, _, rest = value.partition("^")
    given = " ".join(p for p in rest.split("^")[:2] if p)
    if not given:
        return family.upper()
    return f"{family.upper()}, {given}"


def sex_text(value: str) -> str:
    return {"M": "male", "F": "female", "O": "other"}.get(value.upper(), "")


def url_part(value: str) -> str:
    """A value placed in a URL's path or query, every reserved character escaped."""
    return quote(value, safe="")


def values(value: str | list[str] | None) -> list[str]:
    """A multi-valued attribute as the index keeps it (backslash-joined) as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [v for v in value.split("\\") if v]


ENVIRONMENT.filters["date"] = date_text
ENVIRONMENT.filters["values"] = values
ENVIRONMENT.filters["person"] = person_name
ENVIRONMENT.filters["sex"] = sex_text
ENVIRONMENT.filters["when"] = when_here
ENVIRONMENT.globals["roles"] = Role
ENVIRONMENT.globals["quote"] = url_part


@router.get("/static/{name}")
def static(request: Request, name: str) -> Response:
    """The portal's own stylesheet and scripts, and htmx from ``rix viewer install``; public:
    they hold no data."""
    folder = STATIC
    if name == HTMX:
        folder = archive_of(request).settings.portal_assets_folder
    if "/" in name or "\\" in name or name.startswith(".") or not (folder / name).is_file():
        return Response("not found\n", status_code=404, media_type="text/plain")
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    return FileResponse(folder / name, headers=headers)


@router.get("/")
def home(request: Request) -> Response:
    """The portal's front door: the regional search."""
    del request
    return RedirectResponse("/search", status_code=303)
