"""The DICOM JSON model (PS3.18 Annex F) for values rix holds in its index.

Numbers are JSON numbers (IS, DS and the binary VRs), person names are objects with
Alphabetic/Ideographic/Phonetic groups, empty values carry no "Value" at all (F.2.5).
"""

from __future__ import annotations

from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword

NUMBER_VRS = {"IS", "DS", "US", "UL", "SS", "SL", "FL", "FD", "SV", "UV"}
PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


def tag_hex(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    return f"{tag:08X}"


def vr_of(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    return str(dictionary_VR(tag))


def person_name(value: str) -> dict[str, str]:
    groups = value.split("=")
    return {name: group for name, group in zip(PN_GROUPS, groups, strict=False) if group}


def number(text: str, vr: str) -> int | float | str:
    try:
        return int(text) if vr in ("IS", "US", "UL", "SS", "SL", "SV", "UV") else float(text)
    except ValueError:
        return text  # lenient on input: a malformed IS stays a string rather than vanish


def element(keyword: str, value: Any, vr: str | None = None) -> dict[str, Any]:
    """One attribute as ``{"vr": ..., "Value": [...]}``; a backslash separates values."""
    vr = vr or vr_of(keyword)
    out: dict[str, Any] = {"vr": vr}
    if value is None or value == "":
        return out
    if vr == "SQ":
        out["Value"] = value
        return out
    items = value if isinstance(value, list) else str(value).split("\\")
    if vr == "PN":
        out["Value"] = [person_name(str(v)) for v in items]
    elif vr in NUMBER_VRS:
        out["Value"] = [v if isinstance(v, int | float) else number(str(v), vr) for v in items]
    else:
        out["Value"] = [str(v) for v in items]
    return out
