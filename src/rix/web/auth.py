"""Authentication of HTTP requests, and the access check every DICOMweb route passes.

Every route needs a principal except the deliberately public ones (``/healthz``, the
login page): routers are mounted with ``Depends(authenticate)``. Credentials are a
bearer token (a rix API token, or an OIDC JWT when configured) or the login session
cookie. Studies are authorised once per request by ``authorize_study``, a router
dependency on every route with ``{study}`` in its path: visibility is per study
(``rix.access.scope``), so a study that passes covers its series and instances.
"""

from __future__ import annotations

import time
from threading import Lock

from fastapi import Request

from rix import access, audit
from rix.access import EVERYTHING, Principal, share_rules, trail
from rix.access.trail import Touched
from rix.auth import identify
from rix.auth.credentials import CredentialKind
from rix.errors import AccessDenied, NotFound, Unauthenticated
from rix.index import queries
from rix.sharing import sessions
from rix.web import csrf
from rix.web.context import archive_of
from rix.web.dicomweb.errors import check_uids

SESSION_COOKIE = "rix_session"
SHARE_COOKIE = "rix_share"  # a second-opinion link's browser session (rix.sharing.sessions)
VIEW_SUFFIXES = ("/metadata", "/rendered", "/thumbnail")
VIEW_PARTS = ("/frames/", "/bulk/")
VIEW_WINDOW = 300.0  # seconds in which repeated views of a study are one audit event


def source_of(request: Request) -> str:
    return request.client.host if request.client is not None else ""


def authenticate(request: Request) -> Principal:
    """The caller as a principal, or 401 (audited: failed sign-ins are security events).

    A browser's session cookie is sent with any request, even one a hostile page makes, so
    an unsafe method authenticated by it also needs the session's CSRF token in the
    ``X-CSRF-Token`` header (``rix.web.csrf``); portal forms, which send it as a form
    field, use ``caller`` and check it themselves.
    """
    principal = caller(request)
    if request.method not in csrf.SAFE_METHODS and not request.headers.get("authorization"):
        csrf.check(request, request.cookies.get(SESSION_COOKIE, ""))
    return principal


def caller(request: Request) -> Principal:
    """The caller as a principal, or 401; no CSRF check (see ``authenticate``)."""
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known
    archive = archive_of(request)
    header = request.headers.get("authorization", "")
    try:
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("use Authorization: Bearer <token>")
            user = identify.by_bearer(archive.engine, archive.settings, token.strip())
        elif cookie := request.cookies.get(SESSION_COOKIE):
            user = identify.by_secret(archive.engine, cookie, CredentialKind.SESSION)
        elif secret := request.cookies.get(SHARE_COOKIE):
            return _share_caller(request, secret)
        else:
            raise Unauthenticated("sign in at /login, or send Authorization: Bearer <token>")
    except Unauthenticated as exc:
        if header:
            anonymous = Principal(
                kind=access.PrincipalKind.USER, name="", source=source_of(request)
            )
            trail.record_login(
                archive.writer.submit, anonymous, audit.Outcome.REFUSED, "bearer", reason=exc.reason
            )
        raise
    principal = Principal.of_user(user, source_of(request))
    request.state.principal = principal
    return principal


def _share_caller(request: Request, secret: str) -> Principal:
    """The holder of an opened share link: looked up on every request (no cache), so a
    revoked or expired share ends here at once; limited to the routes a share reads
    (``access.share_rules.require_share_route``) and, by ``access.scope``, to its studies."""
    with archive_of(request).engine.connect() as conn:
        session = sessions.session_of(conn, secret)
    if session is None:
        raise Unauthenticated("this shared link's session has ended: open the link again")
    if not session.verified:
        raise Unauthenticated("enter the PIN first")
    principal = session.share.principal(source_of(request))
    share_rules.require_share_route(principal, request.method, request.url.path)
    request.state.principal = principal
    return principal


def principal_of(request: Request) -> Principal:
    """The principal ``authenticate`` attached to the request."""
    principal: Principal = request.state.principal
    return principal


class _RecentViews:
    """Views already audited: OHIF asks for hundreds of frames of one study, which are
    one viewing, recorded once per principal and study every ``VIEW_WINDOW`` seconds."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str], float] = {}
        self._lock = Lock()

    def first(self, principal: Principal, study_uid: str) -> bool:
        now = time.monotonic()
        key = (principal.kind.value, principal.name, study_uid)
        with self._lock:
            if len(self._seen) > 50_000:
                self._seen = {k: t for k, t in self._seen.items() if now - t < VIEW_WINDOW}
            seen = self._seen.get(key)
            if seen is not None and now - seen < VIEW_WINDOW:
                return False
            self._seen[key] = now
            return True


RECENT_VIEWS = _RecentViews()


def is_view(path: str) -> bool:
    return path.endswith(VIEW_SUFFIXES) or any(part in path for part in VIEW_PARTS)


def authorize_study(request: Request) -> None:
    """Dependency of every route naming a study: 404 if there is none, 403 if the
    principal may not see it (both audited), and one retrieve or view event."""
    study_uid = request.path_params.get("study") or request.query_params.get("studyUID")
    if study_uid:
        check_study(request, study_uid)


def check_study(request: Request, study_uid: str) -> None:
    """``authorize_study`` for a study named some other way (an IID launch's list)."""
    check_uids(study_uid)
    principal = caller(request)
    archive = archive_of(request)
    kind = audit.Kind.VIEW if is_view(request.url.path) else audit.Kind.RETRIEVE
    # checked on every request, frames included: a withdrawn agreement or relationship
    # must stop an open viewer at once (measured: +0.5 ms a frame)
    with archive.engine.connect() as conn:
        visible = queries.patient_of_study(conn, study_uid, scope=access.scope(principal))
        hidden = (
            None
            if visible is not None
            else queries.patient_of_study(conn, study_uid, scope=EVERYTHING)
        )
    if visible is None:
        if hidden is None:
            raise NotFound("no such study")
        touched = Touched(study_uid=study_uid, patient=hidden.ref, nhs_number=hidden.nhs_number)
        trail.record(
            archive.writer.post,
            principal,
            kind,
            audit.Outcome.REFUSED,
            touched,
            {"path": request.url.path},
        )
        raise AccessDenied("not authorised: this study is not shared with you")
    if kind is audit.Kind.VIEW and not RECENT_VIEWS.first(principal, study_uid):
        return
    touched = Touched(study_uid=study_uid, patient=visible.ref, nhs_number=visible.nhs_number)
    trail.record(
        archive.writer.post,
        principal,
        kind,
        audit.Outcome.SUCCESS,
        touched,
        {"path": request.url.path},
    )
