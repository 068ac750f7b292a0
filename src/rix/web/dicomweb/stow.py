"""STOW-RS (PS3.18 10.5): every part through the one ingest path, answered per instance.

200 when every instance was stored, 202 when some failed or carry a warning, 409 when
none was stored (PS3.18 10.5.3.2). Each failure names its reason (FailureReason plus an
ErrorComment text), and a part whose Study Instance UID differs from the URL is refused
rather than filed under the wrong study.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, replace
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from rix.access import Principal
from rix.access.checks import require_store
from rix.access.trail import StoreTally
from rix.archive import Archive
from rix.dataset import parsing
from rix.errors import InvalidInstance, RixError, StoreStatus
from rix.ingest import IngestResult, ingest, received_from_file
from rix.web.auth import principal_of
from rix.web.context import archive_of
from rix.web.dicomweb import mediatypes
from rix.web.dicomweb.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, check_uids
from rix.web.dicomweb.multipart import Part, boundary_of, parts


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    failure: int | None = None
    warning: int | None = None
    comment: str = ""


def _from_result(result: IngestResult) -> Outcome:
    warning = None if result.status == StoreStatus.SUCCESS else int(result.status)
    return Outcome(
        sop_class_uid=result.sop_class_uid,
        sop_instance_uid=result.sop_instance_uid,
        study_uid=result.study_uid,
        series_uid=result.series_uid,
        warning=warning,
        comment=result.reason,
    )


def _failed(data: bytes, exc: RixError) -> Outcome:
    """A failure, with whatever UIDs can still be read from the part."""
    sop_class = sop_uid = ""
    try:
        split = parsing.split_file(data)
        header = parsing.read_header(data[split.dataset_offset :], split.transfer_syntax)
        sop_class = parsing.text(header.dataset, "SOPClassUID")
        sop_uid = parsing.text(header.dataset, "SOPInstanceUID")
    except RixError:
        pass
    return Outcome(
        sop_class_uid=sop_class,
        sop_instance_uid=sop_uid,
        study_uid="",
        series_uid="",
        failure=int(exc.dimse_status),
        comment=exc.reason,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Upload:
    """Who stores, and the tally of what they stored (audited once per study)."""

    principal: Principal
    tally: StoreTally
    study: str | None


def store_part(archive: Archive, data: bytes, upload: Upload) -> Outcome:
    try:  # parsing.split_file also reads File Meta written without a preamble
        received = replace(
            received_from_file(data, source="stow", trust=upload.principal.trust),
            study_uid=upload.study or "",
        )
        result = ingest(archive, received)
    except RixError as exc:
        upload.tally.failed(exc.reason)
        return _failed(data, exc)
    upload.tally.stored(result)
    return _from_result(result)


def dataset_from_json(document: dict[str, Any], bulk: dict[str, bytes]) -> bytes:
    """A DICOM JSON dataset (PS3.18 F) with its bulk data parts, as a Part 10 file."""

    def fetch(_tag: str, _vr: str, uri: str) -> bytes:
        if uri not in bulk:
            raise InvalidInstance(f"BulkDataURI {uri[:80]} has no part in the request")
        return bulk[uri]

    try:
        ds = Dataset.from_json(document, bulk_data_uri_handler=fetch)
    except RixError:
        raise
    except Exception as exc:
        raise InvalidInstance(f"invalid DICOM JSON: {exc}") from exc
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if "SOPClassUID" in ds and "SOPInstanceUID" in ds:
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    try:
        ds.save_as(out, enforce_file_format=True)
    except Exception as exc:
        raise InvalidInstance(f"the JSON dataset cannot be encoded: {exc}") from exc
    return out.getvalue()


def answer(request: Request, outcomes: list[Outcome]) -> Response:
    base = str(request.base_url).rstrip("/") + "/dicomweb"
    referenced, failed = [], []
    for o in outcomes:
        item: dict[str, Any] = {
            "00081150": {"vr": "UI", "Value": [o.sop_class_uid]}
            if o.sop_class_uid
            else {"vr": "UI"},
            "00081155": {"vr": "UI", "Value": [o.sop_instance_uid]}
            if o.sop_instance_uid
            else {"vr": "UI"},
        }
        if o.failure is not None:
            item["00081197"] = {"vr": "US", "Value": [o.failure]}
            item["00000902"] = {"vr": "LO", "Value": [o.comment[:64]]}
            failed.append(item)
            continue
        url = f"{base}/studies/{o.study_uid}/series/{o.series_uid}/instances/{o.sop_instance_uid}"
        item["00081190"] = {"vr": "UR", "Value": [url]}
        if o.warning is not None:
            item["00081196"] = {"vr": "US", "Value": [o.warning]}
            item["00000902"] = {"vr": "LO", "Value": [o.comment[:64]]}
        referenced.append(item)
    body: dict[str, Any] = {}
    studies = {o.study_uid for o in outcomes if o.failure is None}
    if len(studies) == 1:
        body["00081190"] = {"vr": "UR", "Value": [f"{base}/studies/{studies.pop()}"]}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    if referenced:
        body["00081199"] = {"vr": "SQ", "Value": referenced}
    if not referenced:
        status = 409
    elif failed or any(o.warning is not None for o in outcomes):
        status = 202
    else:
        status = 200
    return Response(
        json.dumps(body).encode(), status_code=status, media_type="application/dicom+json"
    )


def _check_request(request: Request, limit: int) -> tuple[str, str]:
    length = request.headers.get("content-length")
    if length is not None:
        try:
            size = int(length)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if size > limit:
            raise PayloadTooLarge(f"the body may be at most {limit} bytes")
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "multipart/related":
        raise UnsupportedMediaType(
            'STOW-RS takes multipart/related; type="application/dicom" '
            'or type="application/dicom+json"'
        )
    part_type = ""
    for piece in content_type.split(";")[1:]:
        key, _, value = piece.partition("=")
        if key.strip().lower() == "type":
            part_type = value.strip().strip('"').lower()
    if part_type not in ("application/dicom", "application/dicom+json", ""):
        raise UnsupportedMediaType(f"parts of type {part_type[:60]} cannot be stored")
    return boundary_of(content_type), part_type


async def _limited(request: Request, limit: int) -> Any:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"the body may be at most {limit} bytes")
        yield chunk


async def stow(request: Request, study: str | None) -> Response:
    archive = archive_of(request)
    check_uids(study)
    principal = principal_of(request)
    require_store(principal)
    upload = Upload(principal=principal, tally=StoreTally(), study=study)
    try:
        return await _stow(request, archive, upload)
    finally:
        await run_in_threadpool(upload.tally.record, archive.writer.submit, principal)


async def _stow(request: Request, archive: Archive, upload: Upload) -> Response:
    mediatypes.choose(
        mediatypes.parse_accept(request), ["application/dicom+json", "application/json"]
    )
    limit = archive.settings.max_upload_mb << 20
    boundary, part_type = _check_request(request, limit)
    outcomes: list[Outcome] = []
    json_parts: list[Part] = []
    bulk: dict[str, bytes] = {}
    async for part in parts(_limited(request, limit), boundary):
        kind = part.content_type or part_type
        if kind == "application/dicom":
            outcomes.append(await run_in_threadpool(store_part, archive, part.read(), upload))
        elif kind in ("application/dicom+json", "application/json"):
            json_parts.append(part)
        elif "content-location" in part.headers:
            bulk[part.headers["content-location"]] = part.read()
        else:
            outcomes.append(
                _failed(
                    b"",
                    UnsupportedPart(
                        f"a part of type {kind[:60]} is not DICOM and has no Content-Location"
                    ),
                )
            )
    for part in json_parts:
        outcomes.extend(await run_in_threadpool(_store_json, archive, part, bulk, upload))
    if not outcomes:
        raise BadRequest("the body has no parts to store")
    return answer(request, outcomes)


class UnsupportedPart(RixError):
    dimse_status = StoreStatus.CANNOT_UNDERSTAND
    http_status = 415


def _store_json(
    archive: Archive, part: Part, bulk: dict[str, bytes], upload: Upload
) -> list[Outcome]:
    try:
        documents = json.loads(part.read())
    except ValueError as exc:
        return [_failed(b"", InvalidInstance(f"the JSON part is not JSON: {exc}"))]
    if isinstance(documents, dict):
        documents = [documents]
    out = []
    for document in documents:
        try:
            out.append(store_part(archive, dataset_from_json(document, bulk), upload))
        except RixError as exc:
            out.append(_failed(b"", exc))
    return out


router = APIRouter(tags=["STOW-RS"])


@router.post("/studies", summary="Store instances", status_code=200)
async def store_instances(request: Request) -> Response:
    return await stow(request, None)


@router.post("/studies/{study}", summary="Store instances of one study", status_code=200)
async def store_study_instances(request: Request, study: str) -> Response:
    return await stow(request, study)
