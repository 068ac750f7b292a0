"""HTTP answers for DICOMweb failures (PS3.18 8.6): a status and a reason, never a 5xx for
bad input. ``RixError`` subclasses carry their own HTTP code; these add the HTTP-only ones.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import Request
from fastapi.responses import JSONResponse

from rix import uids
from rix.errors import RixError


class BadRequest(RixError):
    http_status = 400


class NotAcceptable(RixError):
    http_status = 406


class PayloadTooLarge(RixError):
    http_status = 413


class UnsupportedMediaType(RixError):
    http_status = 415


def accepted_types(request: Request) -> list[str]:
    """Media types of the Accept header, in order, parameters dropped."""
    header = request.headers.get("accept", "")
    return [part.split(";")[0].strip().lower() for part in header.split(",") if part.strip()]


def check_accept(request: Request, offered: Iterable[str]) -> None:
    wanted = accepted_types(request)
    if not wanted or "*/*" in wanted:
        return
    offered = list(offered)
    families = {t.split("/")[0] + "/*" for t in offered}
    if not any(w in offered or w in families for w in wanted):
        raise NotAcceptable(
            f"cannot answer with {', '.join(wanted)[:200]}; available: {', '.join(offered)}"
        )


def check_uids(*path_uids: str | None) -> None:
    """UIDs of a path are validated before any lookup (PS3.5 9.1): a malformed one is a
    400 with its reason, not an empty answer or a 404."""
    for uid in filter(None, path_uids):
        if not uids.is_valid(uid):
            raise BadRequest(f"{uid[:80]!r} is not a valid DICOM UID")


async def rix_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RixError)
    headers = {}
    if exc.http_status == 401:  # RFC 6750 3: say how to authenticate
        headers["WWW-Authenticate"] = 'Bearer realm="rix"'
    return JSONResponse({"error": exc.reason}, status_code=exc.http_status, headers=headers)
