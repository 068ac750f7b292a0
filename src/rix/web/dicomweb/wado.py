"""WADO-RS (PS3.18 10.4): instances, metadata, frames, bulk data, rendered and thumbnails.

Instances stream from the object store in 1 MiB chunks, so a 2 GB study never sits in
memory; metadata comes from the JSON built after ingest (``rix.metadata``); frames are
read at the byte offsets recorded at ingest (``rix.frames``). Transcoding happens only
when the Accept header asks for a syntax that is not the stored one.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydicom import dcmread
from pydicom.uid import UID
from sqlalchemy import select

from rix import frames, metadata, rendering, uids
from rix.archive import Archive
from rix.errors import InvalidQuery, NotFound
from rix.index import queries
from rix.index.attributes import BY_KEYWORD
from rix.index.schema import instance_metadata, instances, series, studies
from rix.web.dicomweb import media
from rix.web.dicomweb.errors import BadRequest, NotAcceptable, archive_of

CHUNK = 1 << 20
IMMUTABLE = "private, max-age=31536000, immutable"  # a stored instance never changes
REVALIDATE = "private, no-cache"  # a study or series can gain instances


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
    for uid in filter(None, (study, series_uid, sop)):
        if not uids.is_valid(uid):
            raise BadRequest(f"{uid[:80]!r} is not a valid DICOM UID")
    with archive.engine.connect() as conn:
        found = queries.stored_instances(conn, _matches(study, series_uid, sop))
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


def chunks(archive: Archive, key: str) -> Iterator[bytes]:
    with archive.store.open(key) as f:
        while chunk := f.read(CHUNK):
            yield chunk


def transcoded(archive: Archive, item: queries.StoredInstance, target: str) -> bytes:
    """The instance re-encoded in ``target``; only uncompressed targets are produced."""
    if target not in media.UNCOMPRESSED:
        raise NotAcceptable(f"rix does not encode {UID(target).name}; ask for it as stored (*)")
    with archive.store.open(item.storage_key) as f:
        ds = dcmread(f)
    if UID(item.transfer_syntax).is_compressed:
        try:
            ds.decompress()
        except Exception as exc:
            raise NotAcceptable(f"stored pixel data cannot be decompressed: {exc}") from exc
    ds.file_meta.TransferSyntaxUID = UID(target)
    out = io.BytesIO()
    ds.save_as(
        out,
        enforce_file_format=True,
        implicit_vr=target == media.IMPLICIT_LE,
        little_endian=target != "1.2.840.10008.1.2.2",
    )
    return out.getvalue()


def retrieve(request: Request, archive: Archive, found: list[queries.StoredInstance]) -> Response:
    accepts = media.parse_accept(request)
    choice = media.choose(accepts, ["application/dicom"])
    single = len(found) == 1 and any(a.media_type == "application/dicom" for a in accepts)
    wanted = choice.transfer_syntax or media.EXPLICIT_LE
    tag = etag(found, wanted)
    cache = IMMUTABLE if len(found) == 1 else REVALIDATE
    if not_modified(request, tag):
        return Response(status_code=304, headers={"ETag": tag, "Cache-Control": cache})
    mark = media.boundary()

    def parts() -> Iterator[tuple[dict[str, str], Iterator[bytes]]]:
        for item in found:
            if wanted in ("*", item.transfer_syntax):
                body: Iterator[bytes] = chunks(archive, item.storage_key)
                ts = item.transfer_syntax
            else:
                body, ts = iter([transcoded(archive, item, wanted)]), wanted
            yield {"Content-Type": f"application/dicom; transfer-syntax={ts}"}, body

    if single and choice.media_type == "application/dicom":
        headers, body = next(parts())
        return StreamingResponse(
            body, media_type=headers["Content-Type"], headers={"ETag": tag, "Cache-Control": cache}
        )
    return StreamingResponse(
        media.multipart(parts(), mark),
        media_type=media.multipart_type("application/dicom", mark),
        headers={"ETag": tag, "Cache-Control": cache},
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
        select(instance_metadata.c.json, instances.c.sha256)
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
    digest = hashlib.sha256("".join(r.sha256 for r in rows).encode()).hexdigest()[:32]
    body = "[" + ",".join(r.json for r in rows) + "]"
    body = body.replace(metadata.BULK_MARKER, f'"BulkDataURI":"{base}/')
    return body.encode(), f'"{digest}"'


def metadata_response(
    request: Request,
    archive: Archive,
    study: str,
    series_uid: str | None = None,
    sop: str | None = None,
) -> Response:
    media.choose(media.parse_accept(request), ["application/dicom+json", "application/json"])
    base = str(request.base_url).rstrip("/") + "/dicomweb"
    body, tag = series_metadata(archive, study, series_uid, sop, base)
    headers = {"ETag": tag, "Cache-Control": IMMUTABLE if sop else REVALIDATE}
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    return media.json_response(request, body, headers)


def parse_frame_list(text: str) -> list[int]:
    try:
        numbers = [int(part) for part in text.split(",")]
    except ValueError:
        raise BadRequest("frames must be a comma-separated list of frame numbers") from None
    if not numbers or any(n < 1 for n in numbers) or len(numbers) > 10_000:
        raise BadRequest("frame numbers start at 1")
    return numbers


def _instance_row(archive: Archive, study: str, series_uid: str, sop: str) -> Any:
    locate(archive, study, series_uid, sop)
    with archive.engine.connect() as conn:
        return conn.execute(
            select(
                instances.c.storage_key,
                instances.c.transfer_syntax,
                instances.c.pixel_data_offset,
                instances.c.sha256,
            ).where(instances.c.sop_uid == sop)
        ).one()


def frames_response(
    request: Request, archive: Archive, study: str, series_uid: str, sop: str, frame_list: str
) -> Response:
    numbers = parse_frame_list(frame_list)
    row = _instance_row(archive, study, series_uid, sop)
    stored_ts = row.transfer_syntax
    native = stored_ts in media.UNCOMPRESSED
    stored_type = (
        "application/octet-stream"
        if native
        else media.FRAME_MEDIA_TYPES.get(stored_ts, "application/octet-stream")
    )
    offers = list(dict.fromkeys([stored_type, "application/octet-stream"]))
    choice = media.choose(media.parse_accept(request), offers)
    wanted_ts = choice.transfer_syntax
    as_stored = choice.part_type == stored_type and (
        wanted_ts in (None, "*", stored_ts)
        if not native
        else wanted_ts in (None, "*", stored_ts, media.EXPLICIT_LE)
    )
    tag = f'"{row.sha256[:24]}-{frame_list[:64]}-{int(as_stored)}"'
    if not_modified(request, tag):
        return Response(status_code=304, headers={"ETag": tag, "Cache-Control": IMMUTABLE})
    pl = frames.layout(archive.store, row.storage_key, stored_ts, row.pixel_data_offset)
    if as_stored:
        bodies = [frames.frame(archive.store, pl, n) for n in numbers]
        part_type, ts = stored_type, stored_ts
    else:
        bodies = [_decoded_frame(archive, row.storage_key, n) for n in numbers]
        part_type, ts = "application/octet-stream", media.EXPLICIT_LE
    mark = media.boundary()
    parts = [({"Content-Type": f"{part_type}; transfer-syntax={ts}"}, [b]) for b in bodies]
    return StreamingResponse(
        media.multipart(parts, mark),
        media_type=media.multipart_type(part_type, mark),
        headers={"ETag": tag, "Cache-Control": IMMUTABLE},
    )


def _decoded_frame(archive: Archive, key: str, number: int) -> bytes:
    from pydicom.pixels import pixel_array  # type: ignore[attr-defined]

    with archive.store.open(key) as f:
        ds = dcmread(f)
    count = int(ds.get("NumberOfFrames") or 1)
    if number > count:
        raise NotFound(f"frame {number} does not exist; the instance has {count}")
    try:
        pixels = pixel_array(ds, index=number - 1 if count > 1 else None, raw=True)
    except Exception as exc:
        raise NotAcceptable(f"stored pixel data cannot be decompressed: {exc}") from exc
    return bytes(pixels.astype(pixels.dtype.newbyteorder("<")).tobytes())


def bulk_response(archive: Archive, study: str, series_uid: str, sop: str, tag: str) -> Response:
    row = _instance_row(archive, study, series_uid, sop)
    try:
        number = int(tag, 16)
    except ValueError:
        raise BadRequest("bulk data is addressed by an 8-digit hexadecimal tag") from None
    with archive.store.open(row.storage_key) as f:
        ds = dcmread(f)
    if number not in ds:
        raise NotFound(f"the instance has no element {tag.upper()}")
    value = ds[number].value
    if not isinstance(value, bytes | bytearray):
        raise NotFound(f"element {tag.upper()} is not bulk data")
    mark = media.boundary()
    return StreamingResponse(
        media.multipart([({"Content-Type": "application/octet-stream"}, [bytes(value)])], mark),
        media_type=media.multipart_type("application/octet-stream", mark),
        headers={"Cache-Control": IMMUTABLE},
    )


def rendered_response(
    request: Request, archive: Archive, key: str, frame: int = 1, thumbnail: bool = False
) -> Response:
    choice = media.choose(media.parse_accept(request), ["image/jpeg", "image/png"])
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
    return Response(image, media_type=choice.part_type, headers={"Cache-Control": IMMUTABLE})


def _middle(found: list[queries.StoredInstance]) -> queries.StoredInstance:
    return found[len(found) // 2]


router = APIRouter(tags=["WADO-RS"])


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
    "/studies/{study}/series/{series}/instances/{sop}/bulk/{tag}",
    summary="Bulk data of an instance",
)
def get_bulk(request: Request, study: str, series: str, sop: str, tag: str) -> Response:
    archive = archive_of(request)
    return bulk_response(archive, study, series, sop, tag)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/rendered",
    summary="An instance rendered as JPEG or PNG",
)
def rendered_instance(request: Request, study: str, series: str, sop: str) -> Response:
    archive = archive_of(request)
    (item,) = locate(archive, study, series, sop)
    return rendered_response(request, archive, item.storage_key)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/rendered",
    summary="A frame rendered as JPEG or PNG",
)
def rendered_frame(request: Request, study: str, series: str, sop: str, frame: int) -> Response:
    archive = archive_of(request)
    (item,) = locate(archive, study, series, sop)
    return rendered_response(request, archive, item.storage_key, frame)


@router.get("/studies/{study}/thumbnail", summary="Thumbnail of a study")
def study_thumbnail(request: Request, study: str) -> Response:
    archive = archive_of(request)
    item = _middle(locate(archive, study))
    return rendered_response(request, archive, item.storage_key, thumbnail=True)


@router.get("/studies/{study}/series/{series}/thumbnail", summary="Thumbnail of a series")
def series_thumbnail(request: Request, study: str, series: str) -> Response:
    archive = archive_of(request)
    item = _middle(locate(archive, study, series))
    return rendered_response(request, archive, item.storage_key, thumbnail=True)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/thumbnail",
    summary="Thumbnail of an instance",
)
def instance_thumbnail(request: Request, study: str, series: str, sop: str) -> Response:
    archive = archive_of(request)
    (item,) = locate(archive, study, series, sop)
    return rendered_response(request, archive, item.storage_key, thumbnail=True)
