"""QIDO-RS (PS3.18 10.6): the matching of C-FIND over HTTP, answered in DICOM JSON.

Query keys are keywords or tags (``PatientName``, ``00100010``); UID lists are separated
by commas or backslashes. ``limit`` is capped at ``MAX_LIMIT`` and a capped answer says
so in a Warning header, as PS3.18 8.3.4.4 asks, so a client never mistakes a page for all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydicom.datadict import keyword_for_tag
from sqlalchemy import Connection

from rix import access
from rix.access import Principal, trail
from rix.archive import Archive
from rix.errors import InvalidQuery, NotFound
from rix.index import queries
from rix.index.attributes import ATTRIBUTES, BY_KEYWORD, Level
from rix.region import mpi
from rix.web.auth import principal_of
from rix.web.context import archive_of
from rix.web.dicomweb import dicomjson, mediatypes
from rix.web.dicomweb.errors import BadRequest, check_accept, check_uids

MAX_LIMIT = 1000
MAX_OFFSET = 2**31 - 1  # beyond any archive's rows, and within every database's integers
MAX_INCLUDEFIELDS = 200
MAX_VALUES = 100  # backslash-separated values of one non-UID key; each is an OR in SQL
INTEGER_RANGES = {"IS": (-(2**31), 2**31 - 1), "US": (0, 2**16 - 1)}  # PS3.5 6.2
CONTROL = {"limit", "offset", "includefield", "fuzzymatching"}
DICOM_JSON = "application/dicom+json"

STUDY_FIELDS = (
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "StudyDescription",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
SERIES_FIELDS = (
    "Modality",
    "SeriesDescription",
    "SeriesNumber",
    "SeriesInstanceUID",
    "NumberOfSeriesRelatedInstances",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "BodyPartExamined",
)
INSTANCE_FIELDS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceNumber",
    "Rows",
    "Columns",
    "NumberOfFrames",
)
DEFAULTS = {
    Level.STUDY: STUDY_FIELDS,
    Level.SERIES: SERIES_FIELDS,
    Level.IMAGE: INSTANCE_FIELDS,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class QidoQuery:
    level: Level
    matches: list[queries.Match]
    fields: list[str]
    limit: int
    offset: int
    ignored: list[str]
    capped: bool


def keyword_of(key: str) -> str:
    """``PatientName`` or ``00100010`` → keyword; 400 for anything else."""
    if len(key) == 8 and all(c in "0123456789abcdefABCDEF" for c in key):
        keyword = keyword_for_tag(int(key, 16))
        if keyword:
            return str(keyword)
    if key in BY_KEYWORD or _is_dicom_keyword(key):
        return key
    raise BadRequest(f"{key[:64]!r} is neither a DICOM keyword nor a tag")


def _is_dicom_keyword(key: str) -> bool:
    try:
        dicomjson.tag_hex(key)
    except KeyError:
        return False
    return True


def _int_param(name: str, raw: str, default: int) -> int:
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a non-negative integer, got {raw[:32]!r}") from None
    if value < 0:
        raise BadRequest(f"{name} must be a non-negative integer, got {value}")
    return value


def check_values(keyword: str, vr: str, text: str) -> None:
    """Refuse what the index would turn into a query no database runs: hundreds of OR
    terms (SQLite's expression depth is 1000) or integers wider than a column."""
    values = text.split("\\")
    if vr != "UI" and len(values) > MAX_VALUES:
        raise BadRequest(f"{keyword}: at most {MAX_VALUES} values, got {len(values)}")
    if vr in INTEGER_RANGES:
        low, high = INTEGER_RANGES[vr]
        for value in values:
            try:
                number = int(value.strip())
            except ValueError:
                continue  # the index answers "not an integer"
            if not low <= number <= high:
                raise BadRequest(f"{keyword}: {value[:24]} is outside {low} to {high}")


def parse(params: list[tuple[str, str]], level: Level, fixed: Mapping[str, str]) -> QidoQuery:
    allowed = {lv for lv in Level if _rank(lv) <= _rank(level)}
    matches = [queries.Match(attribute=BY_KEYWORD[k], value=v) for k, v in fixed.items()]
    fields = list(_defaults(level, fixed))
    ignored: list[str] = []
    limit_raw = offset_raw = ""
    fuzzy = False
    includes = 0
    for key, value in params:
        if key == "limit":
            limit_raw = value
        elif key == "offset":
            offset_raw = value
        elif key == "fuzzymatching":
            fuzzy = value.lower() == "true"
        elif key == "includefield":
            items = [item.strip() for item in value.split(",")]
            includes += len(items)
            if includes > MAX_INCLUDEFIELDS:
                raise BadRequest(f"at most {MAX_INCLUDEFIELDS} includefield values")
            for item in items:
                _include(item, level, fields, ignored)
        else:
            _match(key, value, allowed, matches, fields, ignored)
    requested = _int_param("limit", limit_raw, MAX_LIMIT)
    offset = _int_param("offset", offset_raw, 0)
    if offset > MAX_OFFSET:
        raise BadRequest(f"offset must be at most {MAX_OFFSET}")
    return QidoQuery(
        level=level,
        matches=_fuzzy(matches, fuzzy),
        fields=fields,
        limit=min(requested, MAX_LIMIT),
        offset=offset,
        ignored=ignored,
        capped=requested > MAX_LIMIT,
    )


def _match(
    key: str,
    value: str,
    allowed: set[Level],
    matches: list[queries.Match],
    fields: list[str],
    ignored: list[str],
) -> None:
    keyword = keyword_of(key)
    found = BY_KEYWORD.get(keyword)
    if found is None or found.level not in allowed:
        ignored.append(keyword)
        return
    text = value.replace(",", "\\") if found.vr == "UI" else value
    check_values(keyword, found.vr, text)
    matches.append(queries.Match(attribute=found, value=text))
    if keyword not in fields:
        fields.append(keyword)


def _fuzzy(matches: list[queries.Match], fuzzy: bool) -> list[queries.Match]:
    if not fuzzy:
        return matches
    return [queries.Match(attribute=m.attribute, value=m.value, fuzzy=True) for m in matches]


def _rank(level: Level) -> int:
    return list(Level).index(level)


def _defaults(level: Level, fixed: Mapping[str, str]) -> list[str]:
    """Default attributes (PS3.18 Tables 10.6.3-3 to -5), with the levels above when the
    query is not already inside a study or series."""
    fields = list(DEFAULTS[level])
    if level is Level.IMAGE:
        if "SeriesInstanceUID" not in fixed:
            fields += [f for f in SERIES_FIELDS if f not in fields]
        if "StudyInstanceUID" not in fixed:
            fields += [f for f in STUDY_FIELDS if f not in fields]
    if level is Level.SERIES and "StudyInstanceUID" not in fixed:
        fields += [f for f in STUDY_FIELDS if f not in fields]
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
        if keyword in fixed and keyword not in fields:
            fields.append(keyword)
    return fields


def _include(item: str, level: Level, fields: list[str], ignored: list[str]) -> None:
    if item == "all":
        for attr in ATTRIBUTES:
            if _rank(attr.level) <= _rank(level) and attr.keyword not in fields:
                fields.append(attr.keyword)
        return
    keyword = keyword_of(item)
    known = BY_KEYWORD.get(keyword)
    if known is None or _rank(known.level) > _rank(level):
        ignored.append(keyword)
    elif keyword not in fields:
        fields.append(keyword)


def to_json(row: Mapping[str, Any], fields: list[str], base_url: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for keyword in fields:
        attr = BY_KEYWORD[keyword]
        value = row.get(keyword)
        out[dicomjson.tag_hex(keyword)] = dicomjson.element(keyword, value, attr.vr)
    out["00080056"] = {"vr": "CS", "Value": ["ONLINE"]}  # Instance Availability
    out["00081190"] = {"vr": "UR", "Value": [_retrieve_url(row, base_url)]}
    if any(_has_non_ascii(v) for v in row.values()):
        out["00080005"] = {"vr": "CS", "Value": ["ISO_IR 192"]}
    return dict(sorted(out.items()))


def _has_non_ascii(value: Any) -> bool:
    return isinstance(value, str) and not value.isascii()


def _retrieve_url(row: Mapping[str, Any], base_url: str) -> str:
    url = f"{base_url}/studies/{row['StudyInstanceUID']}"
    if "SeriesInstanceUID" in row:
        url += f"/series/{row['SeriesInstanceUID']}"
    if "SOPInstanceUID" in row:
        url += f"/instances/{row['SOPInstanceUID']}"
    return url


def search(
    archive: Archive, query: QidoQuery, principal: Principal, *, regional: bool = False
) -> list[dict[str, Any]]:
    """The rows matching ``query`` that ``principal`` may see. ``regional``: the viewer's
    QIDO (``regional_router``), where a PatientID of the form ``issuer/ID`` names a record
    and matches every record of its person (``rix.region.mpi``)."""
    matches, patient_pks = query.matches, None
    with archive.engine.connect() as conn:
        if regional:
            matches, patient_pks = _person_of(conn, matches)
        try:
            rows = list(
                queries.find(
                    conn,
                    query.level,
                    matches,
                    limit=query.limit,
                    offset=query.offset,
                    scope=access.scope(principal),
                    patient_pks=patient_pks,
                )
            )
        except InvalidQuery as exc:
            raise BadRequest(exc.reason) from exc
    trail.record_query(archive.writer.post, principal, query.level, query.matches, rows)
    if regional:
        for row in rows:
            if "PatientID" in row:
                row["PatientID"] = f"{row.get('IssuerOfPatientID', '')}/{row['PatientID']}"
    return rows


def _person_of(
    conn: Connection, matches: list[queries.Match]
) -> tuple[list[queries.Match], list[int] | None]:
    """A PatientID key ``issuer/ID`` (no wildcard) becomes the records of that record's
    person; an unknown record matches nothing. Other keys are left as they are."""
    for match in matches:
        value = match.value
        if match.attribute.keyword != "PatientID" or "/" not in value or "*" in value:
            continue
        rest = [m for m in matches if m is not match]
        try:
            record = mpi.find_record(conn, value)
        except NotFound:
            return rest, []
        if record.person_pk is None:
            return rest, [record.pk]
        return rest, [r.pk for r in mpi.records_of_person(conn, record.person_pk)]
    return matches, None


def answer(request: Request, archive: Archive, level: Level, fixed: dict[str, str]) -> Response:
    check_uids(*fixed.values())
    check_accept(request, (DICOM_JSON, "application/json"))
    query = parse(list(request.query_params.multi_items()), level, fixed)
    regional = bool(getattr(request.state, "regional", False))
    rows = search(archive, query, principal_of(request), regional=regional)
    base = str(request.base_url).rstrip("/") + "/dicomweb"
    body = json.dumps([to_json(r, query.fields, base) for r in rows], ensure_ascii=False)
    headers: dict[str, str] = {}
    warnings = []
    if query.capped or len(rows) == query.limit == MAX_LIMIT:
        warnings.append(
            f'299 rix "The number of results exceeded the maximum supported by the server '
            f'({MAX_LIMIT}). Additional results can be requested with offset."'
        )
    if query.ignored:
        names = ", ".join(sorted(set(query.ignored)))[:400]
        warnings.append(f'299 rix "The following attributes were ignored: {names}"')
    if warnings:
        headers["Warning"] = ", ".join(warnings)
    return mediatypes.json_response(request, body.encode(), headers)


COMMON_PARAMS: dict[str, Any] = {
    "limit": Query(None, description=f"Page size; at most {MAX_LIMIT}."),
    "offset": Query(None, description="Results to skip."),
    "includefield": Query(None, description="Extra attributes (keyword or tag), or `all`."),
    "fuzzymatching": Query(None, description="`true`: names match case-blind by component."),
}


router = APIRouter(tags=["QIDO-RS"])


def regional_mount(request: Request) -> None:
    """Dependency of the second mount of ``router`` under ``/dicomweb/regional``: the
    OHIF viewer's QIDO root. OHIF finds a patient's other studies by asking for the
    PatientID of the study open (``/studies?00100020=...``, OHIF-NOTES); in a region
    those are under other trusts' IDs, and a bare ID is ambiguous across trusts. There,
    answers give PatientID as ``issuer/ID``, and that form asked back matches the whole
    person, as far as the caller may see (the scope applies as everywhere)."""
    request.state.regional = True


DOC = (
    "Any attribute keyword or tag is a matching key, with C-FIND matching: `*`/`?` "
    "wildcards, `a-b` date ranges, comma-separated UID lists."
)


@router.get("/studies", summary="Search for studies", description=DOC)
def studies(
    request: Request,
    PatientName: str | None = None,
    PatientID: str | None = None,
    StudyDate: str | None = None,
    ModalitiesInStudy: str | None = None,
    AccessionNumber: str | None = None,
    limit: str | None = COMMON_PARAMS["limit"],
    offset: str | None = COMMON_PARAMS["offset"],
    includefield: list[str] | None = COMMON_PARAMS["includefield"],
    fuzzymatching: str | None = COMMON_PARAMS["fuzzymatching"],
) -> Response:
    return answer(request, archive_of(request), Level.STUDY, {})


@router.get("/series", summary="Search for series of all studies", description=DOC)
def all_series(
    request: Request,
    Modality: str | None = None,
    limit: str | None = COMMON_PARAMS["limit"],
    offset: str | None = COMMON_PARAMS["offset"],
    includefield: list[str] | None = COMMON_PARAMS["includefield"],
    fuzzymatching: str | None = COMMON_PARAMS["fuzzymatching"],
) -> Response:
    return answer(request, archive_of(request), Level.SERIES, {})


@router.get("/instances", summary="Search for instances of all studies", description=DOC)
def all_instances(
    request: Request,
    limit: str | None = COMMON_PARAMS["limit"],
    offset: str | None = COMMON_PARAMS["offset"],
    includefield: list[str] | None = COMMON_PARAMS["includefield"],
    fuzzymatching: str | None = COMMON_PARAMS["fuzzymatching"],
) -> Response:
    return answer(request, archive_of(request), Level.IMAGE, {})


@router.get("/studies/{study}/series", summary="Search for series of a study", description=DOC)
def study_series(
    request: Request,
    study: str,
    limit: str | None = COMMON_PARAMS["limit"],
    offset: str | None = COMMON_PARAMS["offset"],
    includefield: list[str] | None = COMMON_PARAMS["includefield"],
) -> Response:
    return answer(request, archive_of(request), Level.SERIES, {"StudyInstanceUID": study})


@router.get(
    "/studies/{study}/instances", summary="Search for instances of a study", description=DOC
)
def study_instances(
    request: Request,
    study: str,
    limit: str | None = COMMON_PARAMS["limit"],
    offset: str | None = COMMON_PARAMS["offset"],
    includefield: list[str] | None = COMMON_PARAMS["includefield"],
) -> Response:
    return answer(request, archive_of(request), Level.IMAGE, {"StudyInstanceUID": study})


@router.get(
    "/studies/{study}/series/{series}/instances",
    summary="Search for instances of a series",
    description=DOC,
)
def series_instances(
    request: Request,
    study: str,
    series: str,
    limit: str | None = COMMON_PARAMS["limit"],
    offset: str | None = COMMON_PARAMS["offset"],
    includefield: list[str] | None = COMMON_PARAMS["includefield"],
) -> Response:
    fixed = {"StudyInstanceUID": study, "SeriesInstanceUID": series}
    return answer(request, archive_of(request), Level.IMAGE, fixed)
