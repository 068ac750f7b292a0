"""WADO-URI (PS3.18 9): ``/wado?requestType=WADO&studyUID=..&seriesUID=..&objectUID=..``.

What older EPR links and report hyperlinks use. ``contentType`` picks the answer:
``application/dicom`` (the instance as stored, or in ``transferSyntax``), else a rendered
``image/jpeg`` (the default, PS3.18 9.1.2.1) or ``image/png``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from rix.dataset import rendering
from rix.errors import InvalidQuery
from rix.web.context import archive_of
from rix.web.dicomweb import wado
from rix.web.dicomweb.errors import BadRequest, NotAcceptable

router = APIRouter(tags=["WADO-URI"])


def _int(params: dict[str, str], name: str, default: int) -> int:
    try:
        return int(params.get(name, default))
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None


@router.get("/wado", summary="Retrieve an object by URL parameters (WADO-URI)")
def wado_uri(
    request: Request,
    requestType: str,
    studyUID: str,
    seriesUID: str,
    objectUID: str,
    contentType: str = "image/jpeg",
) -> Response:
    if requestType != "WADO":
        raise BadRequest("requestType must be WADO")
    archive = archive_of(request)
    (item,) = wado.locate(archive, studyUID, seriesUID, objectUID)
    params = dict(request.query_params)
    content = contentType.split(",", maxsplit=1)[0].strip().lower()
    if content == "application/dicom":
        wanted = params.get("transferSyntax", item.transfer_syntax)
        # outside media reconciled to a local record leave under that record's identity
        correction = wado.corrections(archive, [item]).of(item)
        body, _syntax = wado.served(archive, item, wanted, correction, fallback=False)
        return StreamingResponse(  # revalidated: a merge changes the identity it carries
            body, media_type="application/dicom", headers={"Cache-Control": wado.REVALIDATE}
        )
    if content not in ("image/jpeg", "image/png", "*/*", "image/*"):
        raise NotAcceptable(
            f"contentType {content[:40]} is not offered; use application/dicom, "
            "image/jpeg or image/png"
        )
    try:
        window = None
        if "windowCenter" in params and "windowWidth" in params:
            window = rendering.Window.parse(f"{params['windowCenter']},{params['windowWidth']}")
        viewport = None
        if "rows" in params or "columns" in params:
            size = max(_int(params, "rows", 0), _int(params, "columns", 0))
            viewport = rendering.parse_viewport(f"{size},{size}")
    except InvalidQuery as exc:
        raise BadRequest(exc.reason) from exc
    media_type = "image/png" if content == "image/png" else "image/jpeg"
    image = rendering.render(
        archive.store,
        item.storage_key,
        frame=_int(params, "frameNumber", 1),
        window=window,
        viewport=viewport,
        media_type=media_type,
        quality=_int(params, "imageQuality", 90),
    )
    return Response(image, media_type=media_type, headers={"Cache-Control": wado.IMMUTABLE})
