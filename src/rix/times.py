"""Moments as rix writes them for the people and programs that read them.

rix keeps moments as POSIX seconds. A program receives ISO 8601 with the zone (RFC 3339,
UTC written ``Z``), so ``2026-12-07T21:42:00Z`` means one instant wherever it is read; a
person reads the region's clock with its zone named (``7 Dec 2026 21:42 GMT``, the
``display_timezone`` setting), never a bare ``21:42`` that could be any day and any zone.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def iso(at: float) -> str:
    """``2026-12-07T21:42:00Z``: the instant in UTC, to the second."""
    return datetime.fromtimestamp(round(at), UTC).isoformat().replace("+00:00", "Z")


def shown(at: float, zone: tzinfo) -> str:
    """``7 Dec 2026 21:42 GMT``: the instant on the clock of ``zone``, the zone named
    (GMT or BST in Europe/London)."""
    moment = datetime.fromtimestamp(at, zone)
    return f"{moment.day} {moment:%b %Y %H:%M} {moment.tzname()}"


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/London``); ValueError when there is none."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not a time zone such as Europe/London") from exc
