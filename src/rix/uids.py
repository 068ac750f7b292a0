"""DICOM UIDs as typed values, validated before they touch a path or a query.

PS3.5 9.1: a UID is at most 64 characters of digits and dots, components not empty.
Storage paths are built from UIDs, so anything else (``1.2.3/../x``) is refused here;
leading zeros inside a component are tolerated because real modalities send them and
they cannot escape a folder.
"""

from __future__ import annotations

import re
from typing import NewType

StudyUID = NewType("StudyUID", str)
SeriesUID = NewType("SeriesUID", str)
InstanceUID = NewType("InstanceUID", str)
SOPClassUID = NewType("SOPClassUID", str)

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def clean(value: object) -> str:
    """The UID text without the NUL/space padding some senders leave in place."""
    return str(value or "").strip("\x00 ")


def is_valid(value: str) -> bool:
    return 0 < len(value) <= 64 and _UID.fullmatch(value) is not None
