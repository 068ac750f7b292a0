"""C-FIND/C-MOVE/C-GET identifiers to index matches, and index rows to responses.

PS3.4 C.4.1.1.3: a response carries the keys asked for, filled where rix knows them and
zero-length otherwise, plus Query/Retrieve Level, Retrieve AE Title and the charset.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from rix.dataset import parsing
from rix.errors import InvalidQuery
from rix.index.attributes import BY_KEYWORD, UNIQUE_KEY, Level
from rix.index.queries import Match, levels_down_to

_SKIP = {"QueryRetrieveLevel", "SpecificCharacterSet", "RetrieveAETitle", "InstanceAvailability"}
_OTHER_IDS_SEQ = "OtherPatientIDsSequence"
STUDY_ROOT = frozenset(
    {
        "1.2.840.10008.5.1.4.1.2.2.1",  # FIND
        "1.2.840.10008.5.1.4.1.2.2.2",  # MOVE
        "1.2.840.10008.5.1.4.1.2.2.3",  # GET
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    level: Level
    matches: tuple[Match, ...]


def parse(identifier: Dataset, sop_class: str = "") -> Query:
    """Matching keys of an identifier; InvalidQuery (0xA900) when it has no valid level.

    ``sop_class`` is the information model asked (the request's Affected SOP Class UID);
    the Study Root models have no PATIENT level (PS3.4 C.6.2.1).
    """
    raw_level = parsing.text(identifier, "QueryRetrieveLevel").upper()
    try:
        level = Level(raw_level)
    except ValueError:
        raise InvalidQuery(
            f"QueryRetrieveLevel {raw_level[:20]!r} is not one of PATIENT, STUDY, SERIES, IMAGE"
        ) from None
    if level is Level.PATIENT and sop_class in STUDY_ROOT:
        raise InvalidQuery("the Study Root model has no PATIENT level")
    allowed = set(levels_down_to(level))
    matches: list[Match] = []
    for elem in identifier:
        keyword = elem.keyword
        if keyword in _SKIP or elem.tag.group == 0x0000:
            continue
        if keyword == _OTHER_IDS_SEQ:
            matches.extend(_other_ids_matches(elem))
            continue
        attr = BY_KEYWORD.get(keyword)
        if attr is None or attr.level not in allowed:
            continue  # returned empty, not matched (PS3.4 C.2.2.1.2)
        matches.append(Match(attribute=attr, value=_value_text(elem)))
    return Query(level=level, matches=tuple(matches))


def _value_text(elem: DataElement) -> str:
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00 ")
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip("\x00")


def _other_ids_matches(elem: DataElement) -> list[Match]:
    """Sequence matching (PS3.4 C.2.2.2.6) on the one sequence key rix indexes."""
    values = [parsing.text(item, "PatientID") for item in elem.value or []]
    values = [v for v in values if v]
    if not values:
        return []
    return [Match(attribute=BY_KEYWORD["OtherPatientIDs"], value="\\".join(values))]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponsePlan:
    """What every response to one identifier holds, worked out once per query.

    Responses are built as raw elements, already encoded in the association's transfer
    syntax, so pydicom writes their bytes as they are: encoding thousands of C-FIND
    responses element by element through pydicom was most of a large query's time.
    """

    keys: tuple[tuple[int, str, str], ...]  # (tag, VR, keyword) in tag order
    other_ids: DataElement | None
    level: Level
    retrieve_ae: str
    asked_charset: str
    implicit: bool


def plan_response(
    identifier: Dataset, level: Level, retrieve_ae: str, *, implicit: bool = True
) -> ResponsePlan:
    keys: dict[int, tuple[int, str, str]] = {}
    other_ids = None
    for elem in identifier:
        keyword = elem.keyword
        if keyword in _SKIP or elem.tag.group == 0x0000:
            continue
        if keyword == _OTHER_IDS_SEQ:
            other_ids = elem
            continue
        keys[int(elem.tag)] = (int(elem.tag), str(elem.VR), keyword)
    unique = UNIQUE_KEY[level]
    unique_tag = _tag(unique)
    keys.setdefault(unique_tag, (unique_tag, BY_KEYWORD[unique].vr, unique))
    return ResponsePlan(
        keys=tuple(keys[t] for t in sorted(keys)),
        other_ids=other_ids,
        level=level,
        retrieve_ae=retrieve_ae,
        asked_charset=parsing.text(identifier, "SpecificCharacterSet"),
        implicit=implicit,
    )


def build_response(plan: ResponsePlan, row: Mapping[str, Any]) -> Dataset:
    texts: list[tuple[int, str, Any]] = []
    for tag, vr, keyword in plan.keys:
        value = _row_value(keyword, vr, row)
        if isinstance(value, list):
            value = "\\".join(value)
        texts.append((tag, vr, value))
    texts += [
        (0x00080052, "CS", plan.level.value),
        (0x00080054, "AE", plan.retrieve_ae),
        (0x00080056, "CS", "ONLINE"),
    ]
    codec, charset = _codec(plan.asked_charset, [t for _, _, t in texts if isinstance(t, str)])
    if charset:
        texts.append((0x00080005, "CS", charset))
    elements: dict[BaseTag, Any] = {}
    for tag, vr, value in texts:
        raw = _encode(vr, value, codec)
        elements[BaseTag(tag)] = RawDataElement(
            BaseTag(tag), vr, len(raw), raw, 0, plan.implicit, True
        )
    out = Dataset(elements)
    out.set_original_encoding(plan.implicit, True, out._character_set)  # no re-encoding
    if plan.other_ids is not None:
        out.OtherPatientIDsSequence = _other_ids_items(row, plan.other_ids)
    return out


def _codec(asked: str, texts: list[str]) -> tuple[str, str]:
    """(Python codec, Specific Character Set): the query's own when it can carry the
    values (PS3.4 C.4.1.1.3.1), else UTF-8; none when everything is ASCII."""
    if all(t.isascii() for t in texts):
        return "ascii", ""
    if asked == "ISO_IR 100":
        try:
            for t in texts:
                t.encode("latin-1")
            return "latin-1", asked
        except UnicodeEncodeError:
            pass
    return "utf-8", "ISO_IR 192"


def _encode(vr: str, value: Any, codec: str) -> bytes:
    if value is None or value == "":
        return b""
    if vr == "US":
        return struct.pack("<H", int(value))
    if vr in ("UL", "SL", "SS"):
        return struct.pack({"UL": "<L", "SL": "<l", "SS": "<h"}[vr], int(value))
    data = str(value).encode(codec)
    if len(data) % 2:
        data += b"\0" if vr == "UI" else b" "
    return data


def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    assert tag is not None
    return int(tag)


def _row_value(keyword: str, vr: str, row: Mapping[str, Any]) -> Any:
    if keyword not in row:
        return [] if vr == "SQ" else None
    value = row[keyword]
    if value is None or value == "":
        return None
    attr = BY_KEYWORD[keyword]
    if attr.multi:
        return [v for v in str(value).split("\\") if v]
    if vr in ("US", "UL", "SS", "SL"):
        return int(value)
    return str(value)


def _other_ids_items(row: Mapping[str, Any], asked: DataElement) -> Sequence:
    """One item per other Patient ID, with every key the query's item asked for.

    rix indexes the IDs only; other keys of the item come back zero-length (C.2.2.1.2).
    """
    template = asked.value[0] if asked.value else Dataset()
    items = []
    for pid in filter(None, str(row.get("OtherPatientIDs") or "").split("\\")):
        item = Dataset()
        for key in template:
            if key.keyword != "PatientID":
                item.add(DataElement(key.tag, key.VR, [] if key.VR == "SQ" else None))
        item.PatientID = pid
        items.append(item)
    return Sequence(items)
