"""Cross-site request forgery protection for signed-in browsers.

A browser sends the session cookie with any request, including one a hostile page makes
it send. Every unsafe request authenticated by that cookie must therefore also carry a
token only rix's own pages know: the form field ``csrf`` or the header ``X-CSRF-Token``
(htmx and scripts). The token is derived from the session secret (a keyed hash), so it
needs no storage, is different for every session, and ends with it (OWASP CSRF Cheat
Sheet, "Signed double-submit cookie"). The cookie is also ``SameSite=Lax``: this is the
second line, for browsers or proxies that do not honour it.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from rix.errors import AccessDenied

FIELD = "csrf"
HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def token_for(session_secret: str) -> str:
    return hmac.new(session_secret.encode(), b"rix-csrf-v1", hashlib.sha256).hexdigest()


def same_origin(request: Request) -> bool:
    """False when the browser says the request came from another site (Origin, RFC 6454;
    Sec-Fetch-Site). Absent headers prove nothing either way, so they pass here."""
    site = request.headers.get("sec-fetch-site", "")
    if site:  # set by the browser, beyond any page's reach; Origin may be "null" under
        return site in ("same-origin", "none")  # Referrer-Policy: no-referrer (share pages)
    origin = request.headers.get("origin", "")
    if origin and origin != "null":
        return origin.split("://", 1)[-1] == request.headers.get("host", "")
    return origin != "null"


def check(request: Request, session_secret: str, form_value: str = "") -> None:
    """Refuse (403) an unsafe request authenticated by the session cookie whose secret is
    ``session_secret`` unless it carries that session's token and no other site sent it."""
    if request.method in SAFE_METHODS:
        return
    expected = token_for(session_secret)
    given = request.headers.get(HEADER, "") or form_value
    if not same_origin(request) or not given or not hmac.compare_digest(given, expected):
        raise AccessDenied("this form has expired or came from another site: reload the page")
