"""WADO-RS (PS3.18 10.4): instances, metadata, frames, bulk data, rendered and thumbnails.

Instances stream from the object store in 1 MiB chunks, so a 2 GB study never sits in
memory; metadata comes from the JSON built after ingest (``rix.metadata``); frames are
read at the byte offsets recorded at ingest (``rix.frames``). Transcoding happens only
when the Accept header asks for a syntax that is not the stored one.

Outside media reconciled to a local record (``rix.reconcile``) are stored naming the
outside patient; an instance retrieved carries the local record's identity, as its
metadata does, the outside ID in Other Patient IDs Sequence (``rix.region.identity``).
Those instances alone are decoded and re-encoded; every other one streams as stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import structlog
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydicom import dcmread
from pydicom.pixels import pixel_array  # type: ignore[attr-defined]
from pydicom.uid import UID
from sqlalchemy import select

from rix.access import EVERYTHING
from rix.archive import Archive
from rix.dataset import frames, rendering, transcode
from rix.errors import InvalidQuery, NotFound, RixError
from rix.index import queries
from rix.index.attributes import BY_KEYWORD
from rix.index.schema import instance_metadata, instances, series, studies
from rix.region import identity
from rix.retrieve import copies, metadata
from rix.web.context import archive_of
from rix.web.dicomweb import mediatypes
from rix.web.dicomweb.errors import BadRequest, NotAcceptable, check_uids

log = structlog.get_logger(__name__)

IMMUTABLE = "private, max-age=31536000, immutable"  # a stored instance never changes
REVALIDATE = "private, no-cache"  # a study or series can gain instances
# The same URL answers single part or multipart, stored or decoded, JPEG or PNG by the
# Accept header; without Vary a browser cache would hand one to a request for another.
VARY = {"Vary": "Accept"}


def _matches(study: str, series_uid: str | None, sop: str | None) -> list[queries.Match]:
    out = [queries.Match(attribute=BY_KEYWORD["StudyInstanceUID"], value=study)]
    if series_uid is not None:
        out.append(queries.Match(attribute=BY_KEYWORD["SeriesInstanceUID"], value=series_uid))
    if sop is not None:
        out.append(queries.Match(attribute=BY_KEYWORD["SOPInstanceUID"], value=sop))
    return out


def locate(
    archive: Archive, study: str, series_uid: str | None = None, sop: str | None = None
) -> list[queries.StoredInstance]:
    check_uids(study, series_uid, sop)
    with archive.engine.connect() as conn:  # the study was authorised (web.auth)
        found = queries.stored_instances(conn, _matches(study, series_uid, sop), scope=EVERYTHING)
    if not found:
        raise NotFound("no such " + ("instance" if sop else "series" if series_uid else "study"))
    return found


def etag(found: list[queries.StoredInstance], variant: str = "") -> str:
    digest = hashlib.sha256(variant.encode())
    for item in found:
        digest.update(item.sha256.encode())
    return f'"{digest.hexdigest()[:32]}"'


def not_modified(request: Request, tag: str) -> bool:
    return tag in request.headers.get("if-none-match", "")


def check_producible(found: list[queries.StoredInstance], target: str) -> None:
    """406 before the first byte is sent: once a 200 has started, no error can follow."""
    if target == "*" or target in mediatypes.UNCOMPRESSED:
        return
    if any(item.transfer_syntax != target for item in found):
        raise NotAcceptable(f"rix does not encode {UID(target).name}; ask for it as stored (*)")


def transcoded(
    archive: Archive,
    item: queries.StoredInstance,
    target: str,
    correction: identity.Coercion | None = None,
) -> bytes:
    """The instance re-encoded in ``target`` (only uncompressed targets are produced, or
    the stored syntax), with ``correction`` applied."""
    check_producible([item], target)
    try:
        return copies.encoded(archive.store, item, correction, target)
    except transcode.CannotTranscode as exc:
        raise NotAcceptable(str(exc)) from exc


def corrections(archive: Archive, found: list[queries.StoredInstance]) -> identity.Outgoing:
    """The identity each instance is served with: a user or a script reads the archive's
    own (no destination trust), so only reconciled outside media change. One query."""
    with archive.engine.connect() as conn:
        return identity.outgoing(conn, found, None)


def served(
    archive: Archive,
    item: queries.StoredInstance,
    wanted: str,
    correction: identity.Coercion | None,
    *,
    fallback: bool,
) -> tuple[Iterator[bytes], str]:
    """One instance's Part 10 bytes in ``wanted`` (``*``: as stored), and their syntax:
    the stored file streamed unless the syntax or the identity must change. With
    ``fallback``, an instance that cannot be decompressed once a 200 has started goes in
    its stored syntax (identity still corrected): a stream cut short would lose every
    instance after it."""
    stored_ts = item.transfer_syntax
    target = stored_ts if wanted == "*" else wanted
    if copies.unchanged(item, correction, target):
        return copies.streamed(archive.store, item, None), stored_ts
    try:
        return iter([transcoded(archive, item, target, correction)]), target
    except NotAcceptable as exc:
        if not fallback:
            raise
        log.warning("instance sent in its stored syntax", reason=exc.reason[:200])
    if correction is None:
        return copies.streamed(archive.store, item, None), stored_ts
    return iter([transcoded(archive, item, stored_ts, correction)]), stored_ts


def retrieve(request: Request, archive: Archive, found: list[queries.StoredInstance]) -> Response:
    accepts = mediatypes.parse_accept(request)
    choice = mediatypes.choose(accepts, ["application/dicom"])
    single = len(found) == 1 and any(a.media_type == "application/dicom" for a in accepts)
    wanted = choice.transfer_syntax or mediatypes.EXPLICIT_LE
    check_producible(found, wanted)
    outgoing = corrections(archive, found)
    variant = wanted  # a reconciliation changes what is sent, not the stored sha256
    if outgoing.by_instance:
        variant += repr(sorted(outgoing.by_instance.items()))
    tag = etag(found, variant)
    cache = REVALIDATE  # not immutable: a merge changes the identity an instance leaves with
    if not_modified(request, tag):
        return Response(status_code=304, headers={"ETag": tag, "Cache-Control": cache, **VARY})
    mark = mediatypes.boundary()

    def parts(fallback: bool) -> Iterator[tuple[dict[str, str], Iterator[bytes]]]:
        for item in found:
            body, ts = served(archive, item, wanted, outgoing.of(item), fallback=fallback)
            yield {"Content-Type": f"application/dicom; transfer-syntax={ts}"}, body

    if single and choice.media_type == "application/dicom":
        headers, body = next(parts(fallback=False))  # transcoded before answering: 406
        return StreamingResponse(
            body,
            media_type=headers["Content-Type"],
            headers={"ETag": tag, "Cache-Control": cache, **VARY},
        )
    return StreamingResponse(
        mediatypes.multipart(parts(fallback=True), mark),
        media_type=mediatypes.multipart_type("application/dicom", mark),
        headers={"ETag": tag, "Cache-Control": cache, **VARY},
    )


def series_metadata(
    archive: Archive, study: str, series_uid: str | None, sop: str | None, base: str
) -> tuple[bytes, str]:
    """The metadata documents, built for any instance still waiting for the builder."""
    with archive.engine.connect() as conn:
        missing = metadata.pending(conn, study_uid=study, series_uid=series_uid)
    if missing:
        metadata.build(archive, missing)
    query = (
        select(instance_metadata.c.json, instance_metadata.c.etag)
        .join(instances, instances.c.id == instance_metadata.c.instance_pk)
        .join(series, series.c.id == instances.c.series_pk)
        .join(studies, studies.c.id == series.c.study_pk)
        .where(studies.c.study_uid == study)
        .order_by(series.c.series_number, series.c.id, instances.c.instance_number, instances.c.id)
    )
    if series_uid is not None:
        query = query.where(series.c.series_uid == series_uid)
    if sop is not None:
        query = query.where(instances.c.sop_uid == sop)
    with archive.engine.connect() as conn:
        rows = conn.execute(query).all()
    if not rows:
        raise NotFound("no such " + ("instance" if sop else "series" if series_uid else "study"))
    # the documents' own hashes (a rebuild after an identity change changes them; the
    # stored bytes' would not), and the base the BulkDataURIs are made absolute with
    digest = hashlib.sha256(base.encode())
    for r in rows:
        digest.update(r.etag.encode())
    body = "[" + ",".join(r.json for r in rows) + "]"
    body = body.replace(metadata.BULK_MARKER, f'"BulkDataURI":"{base}/')
    return body.encode(), f'"{digest.hexdigest()[:32]}"'


def metadata_response(
    request: Request,
    archive: Archive,
    study: str,
    series_uid: str | None = None,
    sop: str | None = None,
) -> Response:
    check_uids(study, series_uid, sop)
    mediatypes.choose(
        mediatypes.parse_accept(request), ["application/dicom+json", "application/json"]
    )
    base = str(request.base_url).rstrip("/") + "/dicomweb"
    body, tag = series_metadata(archive, study, series_uid, sop, base)
    # never immutable, an instance's either: a merge changes what its metadata says
    headers = {"ETag": tag, "Cache-Control": REVALIDATE}
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    return mediatypes.json_response(request, body, headers)


def parse_frame_list(text: str) -> list[int]:
    try:
        numbers = [int(part) for part in text.split(",")]
    except ValueError:
        raise BadRequest("frames must be a comma-separated list of frame numbers") from None
    if not numbers or any(n < 1 for n in numbers) or len(numbers) > 10_000:
        raise BadRequest("frame numbers start at 1")
    return numbers


def _instance_row(archive: Archive, study: str, series_uid: str, sop: str) -> Any:
    """The stored instance with its pixel offset, found in one query; 400/404 as locate."""
    check_uids(study, series_uid, sop)
    with archive.engine.connect() as conn:
        row = conn.execute(
            select(
                instances.c.storage_key,
                instances.c.transfer_syntax,
                instances.c.pixel_data_offset,
                instances.c.sha256,
            )
            .join(series, series.c.id == instances.c.series_pk)
            .join(studies, studies.c.id == series.c.study_pk)
            .where(
                instances.c.sop_uid == sop,
                series.c.series_uid == series_uid,
                studies.c.study_uid == study,
            )
        ).first()
    if row is None:
        raise NotFound("no such instance")
    return row


OCTET_STREAM = "application/octet-stream"
LITTLE_ENDIAN_NATIVE = {mediatypes.EXPLICIT_LE, mediatypes.IMPLICIT_LE}


def frame_answer(stored_ts: str, choice: mediatypes.Accept) -> str:
    """How to answer a frames request (PS3.18 8.7.3.5.3, Table 8.7.3-5): ``stored``
    (the compressed bitstreams as stored), ``native`` (stored little endian bytes,
    which are the Explicit VR Little Endian frames) or ``decoded``; 406 otherwise."""
    wanted = choice.transfer_syntax
    if stored_ts not in mediatypes.UNCOMPRESSED:
        stored_type = mediatypes.FRAME_MEDIA_TYPES.get(stored_ts, OCTET_STREAM)
        if choice.part_type == stored_type != OCTET_STREAM and wanted in (None, "*", stored_ts):
            return "stored"
    if choice.part_type == OCTET_STREAM and wanted in (None, "*", mediatypes.EXPLICIT_LE):
        return "native" if stored_ts in LITTLE_ENDIAN_NATIVE else "decoded"
    raise NotAcceptable(
        f"frames of this instance are offered as stored ({UID(stored_ts).name}) or as "
        f"{OCTET_STREAM} in Explicit VR Little Endian, not {wanted}"
    )


def frames_response(
    request: Request, archive: Archive, study: str, series_uid: str, sop: str, frame_list: str
) -> Response:
    numbers = parse_frame_list(frame_list)
    row = _instance_row(archive, study, series_uid, sop)
    stored_ts = row.transfer_syntax
    stored_type = mediatypes.FRAME_MEDIA_TYPES.get(stored_ts, OCTET_STREAM)
    offers = list(dict.fromkeys([stored_type, OCTET_STREAM]))
    answer = frame_answer(stored_ts, mediatypes.choose(mediatypes.parse_accept(request), offers))
    tag = f'"{row.sha256[:24]}-{frame_list[:64]}-{answer}"'
    if not_modified(request, tag):
        return Response(status_code=304, headers={"ETag": tag, "Cache-Control": IMMUTABLE, **VARY})
    if answer == "decoded":
        bodies = _decoded_frames(archive, row.storage_key, numbers)
        part_type, ts = OCTET_STREAM, mediatypes.EXPLICIT_LE
    else:
        pl = frames.layout(archive.store, row.storage_key, stored_ts, row.pixel_data_offset)
        bodies = [frames.frame(archive.store, pl, n) for n in numbers]
        part_type, ts = OCTET_STREAM, mediatypes.EXPLICIT_LE
        if answer == "stored":
            part_type, ts = stored_type, stored_ts
    mark = mediatypes.boundary()
    parts = [({"Content-Type": f"{part_type}; transfer-syntax={ts}"}, [b]) for b in bodies]
    # the frames are in memory already: one body, no streaming hand-offs per piece
    return Response(
        b"".join(mediatypes.multipart(parts, mark)),
        media_type=mediatypes.multipart_type(part_type, mark),
        headers={"ETag": tag, "Cache-Control": IMMUTABLE, **VARY},
    )


def _decoded_frames(archive: Archive, key: str, numbers: list[int]) -> list[bytes]:
    """Frames decoded by pydicom, raw (no colour conversion), little endian: for
    compressed, big endian and deflated instances."""
    with archive.store.open(key) as f:
        ds = dcmread(f)
    count = int(ds.get("NumberOfFrames") or 1)
    out = []
    for number in numbers:
        if number > count:
            raise NotFound(f"frame {number} does not exist; the instance has {count}")
        try:
            pixels = pixel_array(ds, index=number - 1 if count > 1 else None, raw=True)
        except Exception as exc:
            raise NotAcceptable(f"stored pixel data cannot be decompressed: {exc}") from exc
        out.append(bytes(pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()))
    return out


def bulk_response(
    request: Request, archive: Archive, study: str, series_uid: str, sop: str, path: str
) -> Response:
    """The value a BulkDataURI of ``rix.metadata`` names: ``TAG`` or ``SEQ/ITEM/.../TAG``.

    A ``Range`` header (RFC 9110 14.2) answers 206 with that slice of the value, so a
    client can fetch part of a large waveform or pixel stream.
    """
    accepts = mediatypes.parse_accept(request)
    choice = mediatypes.choose(accepts, [OCTET_STREAM])
    row = _instance_row(archive, study, series_uid, sop)
    with archive.store.open(row.storage_key) as f:
        ds = dcmread(f)
    try:
        elem = metadata.element_at(ds, path)
    except ValueError as exc:
        raise BadRequest(
            f"bulk data is addressed by 8-digit hexadecimal tags and item numbers: {exc}"
        ) from None
    except (KeyError, IndexError):
        raise NotFound(f"the instance has no element {path[:80].upper()}") from None
    value = elem.value
    if not isinstance(value, bytes | bytearray):
        raise NotFound(f"element {path[:80].upper()} is not bulk data")
    headers = {"Cache-Control": IMMUTABLE, "Accept-Ranges": "bytes", **VARY}
    status = 200
    if "range" in request.headers:
        start, end = byte_range(request.headers["range"], len(value))
        headers["Content-Range"] = f"bytes {start}-{end}/{len(value)}"
        value, status = value[start : end + 1], 206
    single = any(a.media_type == OCTET_STREAM for a in accepts)  # asked for by name
    if single and choice.media_type == OCTET_STREAM:
        return Response(bytes(value), status_code=status, media_type=OCTET_STREAM, headers=headers)
    mark = mediatypes.boundary()
    return StreamingResponse(
        mediatypes.multipart([({"Content-Type": OCTET_STREAM}, [bytes(value)])], mark),
        status_code=status,
        media_type=mediatypes.multipart_type(OCTET_STREAM, mark),
        headers=headers,
    )


class RangeNotSatisfiable(RixError):
    http_status = 416


def byte_range(header: str, size: int) -> tuple[int, int]:
    """(first, last) byte of a single ``bytes=a-b``, ``a-`` or ``-n`` range."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        raise RangeNotSatisfiable("only a single bytes range is served")
    first, _, last = spec.strip().partition("-")
    try:
        if not first:
            start, end = max(size - int(last), 0), size - 1
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
    except ValueError:
        raise RangeNotSatisfiable(f"malformed range {header[:40]!r}") from None
    if start > end or start >= size:
        raise RangeNotSatisfiable(f"range {header[:40]!r} is outside the {size} bytes")
    return start, end


def rendered_response(
    request: Request,
    archive: Archive,
    key: str,
    frame: int = 1,
    thumbnail: bool = False,
    cache: str = IMMUTABLE,
) -> Response:
    choice = mediatypes.choose(mediatypes.parse_accept(request), ["image/jpeg", "image/png"])
    params = request.query_params
    try:
        quality = int(params.get("quality", "90"))
    except ValueError:
        raise BadRequest("quality must be an integer from 1 to 100") from None
    if not 1 <= quality <= 100:
        raise BadRequest("quality must be an integer from 1 to 100")
    try:
        window = rendering.Window.parse(params["window"]) if "window" in params else None
        viewport = rendering.parse_viewport(params["viewport"]) if "viewport" in params else None
    except InvalidQuery as exc:
        raise BadRequest(exc.reason) from exc
    if thumbnail and viewport is None:
        viewport = (128, 128)
    image = rendering.render(
        archive.store,
        key,
        frame=frame,
        window=window,
        viewport=viewport,
        media_type=choice.part_type,
        quality=quality,
    )
    return Response(image, media_type=choice.part_type, headers={"Cache-Control": cache, **VARY})


def thumbnail_response(
    request: Request, archive: Archive, found: list[queries.StoredInstance]
) -> Response:
    """A study's or series' thumbnail: its middle instance, or the nearest one that can be
    rendered (an SR or a KOS in the middle has no picture). Revalidated, not immutable:
    the middle moves when the study gains instances."""
    middle = len(found) // 2
    nearest = sorted(range(len(found)), key=lambda i: abs(i - middle))[:MAX_THUMBNAIL_TRIES]
    failure = rendering.CannotRender("no instance near the middle has a picture to render")
    for index in nearest:
        try:
            return rendered_response(
                request, archive, found[index].storage_key, thumbnail=True, cache=REVALIDATE
            )
        except rendering.CannotRender as exc:
            failure = exc
    raise failure


MAX_THUMBNAIL_TRIES = 16


router = APIRouter(tags=["WADO-RS"])

# PS3.18 8.3.5.1: the query parameters of rendered resources, declared for the OpenAPI
# document; rendered_response reads them from the request.
WINDOW = Query(None, description="`center,width[,linear|linear_exact|sigmoid]`")
VIEWPORT = Query(None, description="`width,height` of the box to fit, 1 to 4096 pixels")
QUALITY = Query(None, description="JPEG quality, 1 to 100")


@router.get("/studies/{study}", summary="Retrieve a study")
def get_study(request: Request, study: str) -> Response:
    archive = archive_of(request)
    return retrieve(request, archive, locate(archive, study))


@router.get("/studies/{study}/series/{series}", summary="Retrieve a series")
def get_series(request: Request, study: str, series: str) -> Response:
    archive = archive_of(request)
    return retrieve(request, archive, locate(archive, study, series))


@router.get("/studies/{study}/series/{series}/instances/{sop}", summary="Retrieve an instance")
def get_instance(request: Request, study: str, series: str, sop: str) -> Response:
    archive = archive_of(request)
    return retrieve(request, archive, locate(archive, study, series, sop))


@router.get("/studies/{study}/metadata", summary="Metadata of a study")
def study_metadata(request: Request, study: str) -> Response:
    archive = archive_of(request)
    return metadata_response(request, archive, study)


@router.get("/studies/{study}/series/{series}/metadata", summary="Metadata of a series")
def get_series_metadata(request: Request, study: str, series: str) -> Response:
    archive = archive_of(request)
    return metadata_response(request, archive, study, series)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/metadata",
    summary="Metadata of an instance",
)
def instance_metadata_route(request: Request, study: str, series: str, sop: str) -> Response:
    archive = archive_of(request)
    return metadata_response(request, archive, study, series, sop)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/frames/{frame_list}",
    summary="Frames of an instance",
)
def get_frames(request: Request, study: str, series: str, sop: str, frame_list: str) -> Response:
    archive = archive_of(request)
    return frames_response(request, archive, study, series, sop, frame_list)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/bulk/{path:path}",
    summary="Bulk data of an instance",
    description="`path` is a tag (`7FE00010`), or inside sequences "
    "`SEQUENCE/ITEM/.../TAG` with items counted from 0, as in the metadata's BulkDataURIs.",
)
def get_bulk(request: Request, study: str, series: str, sop: str, path: str) -> Response:
    archive = archive_of(request)
    return bulk_response(request, archive, study, series, sop, path)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/rendered",
    summary="An instance rendered as JPEG or PNG",
)
def rendered_instance(
    request: Request,
    study: str,
    series: str,
    sop: str,
    window: str | None = WINDOW,
    viewport: str | None = VIEWPORT,
    quality: str | None = QUALITY,
) -> Response:
    archive = archive_of(request)
    (item,) = locate(archive, study, series, sop)
    return rendered_response(request, archive, item.storage_key)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/rendered",
    summary="A frame rendered as JPEG or PNG",
)
def rendered_frame(
    request: Request,
    study: str,
    series: str,
    sop: str,
    frame: int,
    window: str | None = WINDOW,
    viewport: str | None = VIEWPORT,
    quality: str | None = QUALITY,
) -> Response:
    archive = archive_of(request)
    (item,) = locate(archive, study, series, sop)
    return rendered_response(request, archive, item.storage_key, frame)


@router.get("/studies/{study}/thumbnail", summary="Thumbnail of a study")
def study_thumbnail(
    request: Request,
    study: str,
    window: str | None = WINDOW,
    viewport: str | None = VIEWPORT,
    quality: str | None = QUALITY,
) -> Response:
    archive = archive_of(request)
    return thumbnail_response(request, archive, locate(archive, study))


@router.get("/studies/{study}/series/{series}/thumbnail", summary="Thumbnail of a series")
def series_thumbnail(
    request: Request,
    study: str,
    series: str,
    window: str | None = WINDOW,
    viewport: str | None = VIEWPORT,
    quality: str | None = QUALITY,
) -> Response:
    archive = archive_of(request)
    return thumbnail_response(request, archive, locate(archive, study, series))


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/thumbnail",
    summary="Thumbnail of an instance",
)
def instance_thumbnail(
    request: Request,
    study: str,
    series: str,
    sop: str,
    window: str | None = WINDOW,
    viewport: str | None = VIEWPORT,
    quality: str | None = QUALITY,
) -> Response:
    archive = archive_of(request)
    (item,) = locate(archive, study, series, sop)
    return rendered_response(request, archive, item.storage_key, thumbnail=True)
