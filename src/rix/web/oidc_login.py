"""Single sign-on: ``/login/oidc`` sends the browser to the region's identity provider,
``/login/oidc/callback`` signs it in when it comes back (``rix.auth.oidc_login``).

Both are public, as the sign-in page is, and exist only when ``oidc_client_id`` is set.
The started sign-in's ``state`` also goes into a short-lived HttpOnly, SameSite=Lax cookie
on ``/login/oidc``: the callback is honoured only in the browser that started it (RFC 6749
10.12, login CSRF), and once. Success is the password sign-in's session
(``rix.web.login.start_session``); every failure is the sign-in page with a reason,
audited with ``via: oidc``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from rix.auth import oidc_login
from rix.auth.oidc_login import CALLBACK_PATH, PendingSignIn, PendingSignIns, SignInFailed
from rix.web.context import archive_of
from rix.web.login import refuse, safe_next, start_session

router = APIRouter(tags=["sign-in"])

STATE_COOKIE = "rix_oidc_state"
COOKIE_PATH = "/login/oidc"


def _redirect_uri(request: Request) -> str:
    """The callback's absolute URL; identical in the authorization and token requests
    (RFC 6749 4.1.3), and registered at the identity provider."""
    base = archive_of(request).settings.oidc_redirect_base or str(request.base_url)
    return base.rstrip("/") + CALLBACK_PATH


@router.get(
    "/login/oidc", summary="Sign in with your organisation's account: to the identity provider"
)
def start(request: Request, next: str = "/") -> Response:
    pending = PendingSignIns(archive_of(request).engine).start(target=safe_next(next))
    settings = archive_of(request).settings
    url = oidc_login.authorization_url(settings, pending, redirect_uri=_redirect_uri(request))
    response = RedirectResponse(url, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(
        STATE_COOKIE,
        pending.state,
        max_age=int(oidc_login.LIFETIME),
        httponly=True,
        samesite="lax",  # sent on the identity provider's top-level redirect back
        secure=request.url.scheme == "https",
        path=COOKIE_PATH,
    )
    return response


@router.get(CALLBACK_PATH, summary="Back from the identity provider: the session starts here")
async def callback(request: Request, code: str = "", state: str = "", error: str = "") -> Response:
    archive = archive_of(request)
    pending: PendingSignIn | None = None
    try:
        pending = await run_in_threadpool(
            PendingSignIns(archive.engine).take,
            state,
            browser_state=request.cookies.get(STATE_COOKIE, ""),
        )
        if error:  # RFC 6749 4.1.2.1: the identity provider did not sign the user in
            reason = f"identity provider answered {oidc_login.error_code(error)}"
            raise SignInFailed(reason)
        if not code:
            raise SignInFailed("no authorization code")
        user = await run_in_threadpool(
            oidc_login.complete,
            settings=archive.settings,
            engine=archive.engine,
            pending=pending,
            code=code,
            redirect_uri=_redirect_uri(request),
        )
    except SignInFailed as exc:
        target = "/" if pending is None else pending.target
        response: Response = await refuse(
            request,
            via="oidc",
            error=exc.message,
            target=target,
            status=exc.http_status,
            reason=exc.reason,
        )
    else:
        response = await start_session(request, user, via="oidc", target=pending.target)
    response.delete_cookie(STATE_COOKIE, path=COOKIE_PATH)
    return response
