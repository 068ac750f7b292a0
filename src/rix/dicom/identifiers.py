"""C-FIND/C-MOVE/C-GET identifiers to index matches, and index rows to responses.

PS3.4 C.4.1.1.3: a response carries the keys asked for, filled where rix knows them and
zero-length otherwise, plus Query/Retrieve Level, Retrieve AE Title and the charset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from rix import parsing
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


def response(
    row: Mapping[str, Any], identifier: Dataset, level: Level, retrieve_ae: str
) -> Dataset:
    out = Dataset()
    for elem in identifier:
        keyword = elem.keyword
        if keyword in _SKIP or elem.tag.group == 0x0000:
            continue
        if keyword == _OTHER_IDS_SEQ:
            out.OtherPatientIDsSequence = _other_ids_items(row, elem)
            continue
        value = _row_value(keyword, elem.VR, row)
        out.add(DataElement(elem.tag, elem.VR, value))
    unique = UNIQUE_KEY[level]
    if unique not in out:
        out.add(DataElement(_tag(unique), BY_KEYWORD[unique].vr, row.get(unique) or None))
    out.QueryRetrieveLevel = level.value
    out.RetrieveAETitle = retrieve_ae
    out.InstanceAvailability = "ONLINE"
    charset = _charset(out, identifier)
    if charset:
        out.SpecificCharacterSet = charset
    return out


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


def _charset(out: Dataset, identifier: Dataset) -> str:
    """Answer in the query's character set when it can carry the values, else UTF-8."""
    texts = [str(e.value) for e in out if isinstance(e.value, str | bytes) or e.VR == "PN"]
    if all(t.isascii() for t in texts):
        return ""
    asked = parsing.text(identifier, "SpecificCharacterSet")
    if asked == "ISO_IR 100":
        try:
            for t in texts:
                t.encode("latin-1")
            return asked
        except UnicodeEncodeError:
            pass
    return "ISO_IR 192"
