"""The login page (deliberately public) and sign-out.

A successful sign-in sets an HttpOnly, SameSite=Lax session cookie holding a random
secret (``rix.auth.credentials``) that lasts ``session_hours``; every attempt, good or
bad, is audited. The portal builds on this; scripts use API tokens or OIDC instead.
Single sign-on (``rix.web.oidc_login``) ends in the same ``start_session`` and ``refuse``.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from rix import audit
from rix.access import Principal, PrincipalKind, trail
from rix.archive import Archive
from rix.auth import credentials, identify
from rix.auth.credentials import CredentialKind
from rix.auth.users import User
from rix.errors import AccessDenied, Unauthenticated
from rix.index.database import begin_write
from rix.web import csrf
from rix.web.auth import SESSION_COOKIE, source_of
from rix.web.context import archive_of
from rix.web.portal import pages

router = APIRouter(tags=["sign-in"])


def safe_next(value: str) -> str:
    """Only a path on this site: an open redirect would help phishing."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):  # "/\t/evil.example" etc.
        return "/"
    return value


@router.get("/login", response_class=HTMLResponse, summary="The sign-in page (public)")
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return _page(request, error="", target=safe_next(next))


def _page(request: Request, *, error: str, target: str, status: int = 200) -> HTMLResponse:
    """The sign-in page; it offers single sign-on when rix is an OIDC client."""
    sso = bool(archive_of(request).settings.oidc_client_id)
    context = {"error": error, "next": target, "sso": sso}
    return pages.render(request, "login.html", context, status=status)


@router.post("/login", summary="Sign in with a user name and password (public)")
async def login(request: Request) -> Response:
    if not csrf.same_origin(request):  # login CSRF: signing a victim in as someone else
        raise AccessDenied("sign in from rix's own sign-in page")
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    username = form.get("username", [""])[0]
    password = form.get("password", [""])[0]
    target = safe_next(form.get("next", ["/"])[0])
    archive = archive_of(request)
    try:
        user = await run_in_threadpool(identify.by_password, archive.engine, username, password)
    except Unauthenticated:
        error = "User name or password not recognised."
        return await refuse(
            request, via="password", name=username[:128], error=error, target=target
        )
    return await start_session(request, user, via="password", target=target)


async def start_session(request: Request, user: User, *, via: str, target: str) -> Response:
    """Sign the browser in as ``user``, however it proved who it is (``via``: password,
    oidc): a new session secret in an HttpOnly, SameSite=Lax cookie (Secure under TLS)
    lasting ``session_hours``, the sign-in audited, and a 303 to ``target``."""
    archive = archive_of(request)
    lifetime = archive.settings.session_hours * 3600

    def issue() -> str:
        with begin_write(archive.engine) as conn:
            return credentials.issue(
                conn, user_pk=user.pk, kind=CredentialKind.SESSION, lifetime=lifetime
            )

    secret = await run_in_threadpool(issue)
    principal = Principal.of_user(user, source_of(request))
    await run_in_threadpool(
        trail.record_login, archive.writer.submit, principal, audit.Outcome.SUCCESS, via
    )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(lifetime),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


async def refuse(
    request: Request,
    *,
    via: str,
    error: str,
    target: str,
    name: str = "",
    status: int = 401,
    **detail: str,
) -> HTMLResponse:
    """A failed sign-in: audited (``detail`` says why, never with a secret in it) and
    answered with the sign-in page showing ``error``."""
    archive = archive_of(request)
    someone = Principal(kind=PrincipalKind.USER, name=name, source=source_of(request))
    await run_in_threadpool(
        trail.record_login, archive.writer.submit, someone, audit.Outcome.REFUSED, via, **detail
    )
    page = _page(request, error=error, target=target, status=status)
    if status == 401:
        # RFC 9110 15.5.2: a 401 names a scheme; scripts use bearer tokens
        page.headers["WWW-Authenticate"] = 'Bearer realm="rix"'
    return page


@router.post("/logout", summary="Sign out: the session ends here and now")
async def logout(request: Request) -> Response:
    archive = archive_of(request)
    secret = request.cookies.get(SESSION_COOKIE, "")
    if secret:
        await pages.form_of(request)  # the CSRF check: no page elsewhere signs you out
        await run_in_threadpool(_end_session, archive, secret)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _end_session(archive: Archive, secret: str) -> None:
    with begin_write(archive.engine) as conn:
        credentials.revoke(conn, secret)
    identify.RECENT.forget()
