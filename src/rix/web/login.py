"""The login page (deliberately public) and sign-out.

A successful sign-in sets an HttpOnly, SameSite=Lax session cookie holding a random
secret (``rix.auth.credentials``) that lasts ``session_hours``; every attempt, good or
bad, is audited. The portal builds on this; scripts use API tokens or OIDC instead.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from rix import access, audit
from rix.access import Principal, PrincipalKind
from rix.auth import credentials, identify
from rix.auth.credentials import CredentialKind
from rix.errors import Unauthenticated
from rix.index.database import begin_write
from rix.web.auth import SESSION_COOKIE, source_of
from rix.web.dicomweb.errors import archive_of

router = APIRouter(tags=["sign-in"])

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rix: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:22rem;margin:4rem auto}}
label,input,button{{display:block;width:100%;margin:.4rem 0}}.error{{color:#b00020}}</style>
</head><body><h1>rix</h1><p>Regional Imaging eXchange</p>{error}
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<label>User name <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password"
required></label><button type="submit">Sign in</button></form></body></html>"""


def _safe_next(value: str) -> str:
    """Only a path on this site: an open redirect would help phishing."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):  # "/\t/evil.example" etc.
        return "/"
    return value


@router.get("/login", response_class=HTMLResponse, summary="The sign-in page (public)")
def login_page(next: str = "/") -> HTMLResponse:
    return HTMLResponse(PAGE.format(error="", next=html.escape(_safe_next(next))))


@router.post("/login", summary="Sign in with a user name and password (public)")
async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    username = form.get("username", [""])[0]
    password = form.get("password", [""])[0]
    target = _safe_next(form.get("next", ["/"])[0])
    archive = archive_of(request)
    source = source_of(request)
    try:
        user = await run_in_threadpool(identify.by_password, archive.engine, username, password)
    except Unauthenticated:
        someone = Principal(kind=PrincipalKind.USER, name=username[:128], source=source)
        await run_in_threadpool(
            access.record_login, archive.writer.submit, someone, audit.Outcome.REFUSED, "password"
        )
        error = '<p class="error">User name or password not recognised.</p>'
        page = PAGE.format(error=error, next=html.escape(target))
        # RFC 9110 15.5.2: a 401 names a scheme; scripts use bearer tokens
        return HTMLResponse(
            page, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="rix"'}
        )
    lifetime = archive.settings.session_hours * 3600

    def issue() -> str:
        with begin_write(archive.engine) as conn:
            return credentials.issue(
                conn, user_pk=user.pk, kind=CredentialKind.SESSION, lifetime=lifetime
            )

    secret = await run_in_threadpool(issue)
    principal = Principal.of_user(user, source)
    await run_in_threadpool(
        access.record_login, archive.writer.submit, principal, audit.Outcome.SUCCESS, "password"
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


@router.post("/logout", summary="Sign out: the session ends here and now")
def logout(request: Request) -> Response:
    archive = archive_of(request)
    secret = request.cookies.get(SESSION_COOKIE, "")
    if secret:
        with begin_write(archive.engine) as conn:
            credentials.revoke(conn, secret)
        identify.RECENT.forget()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
