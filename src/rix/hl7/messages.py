"""Reading HL7 v2 messages (python-hl7) and writing their acknowledgements."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import IntEnum

import hl7
from rix.dataset import nhs

NHS_AUTHORITIES = frozenset({"NHS", "NHSNBR", "2.16.840.1.113883.2.1.4.1"})


class ErrorCode(IntEnum):
    """HL7 table 0357, message error condition codes (ERR-3)."""

    SEGMENT_SEQUENCE = 100
    REQUIRED_FIELD_MISSING = 101
    DATA_TYPE = 102
    TABLE_VALUE_NOT_FOUND = 103
    UNSUPPORTED_MESSAGE_TYPE = 200
    UNSUPPORTED_EVENT = 201
    UNKNOWN_KEY = 204
    DUPLICATE_KEY = 205
    INTERNAL_ERROR = 207


class Rejected(ValueError):
    """The message cannot be processed as sent: answered AR (application reject), with
    ``code`` in ERR-3."""

    def __init__(self, reason: str, code: ErrorCode = ErrorCode.REQUIRED_FIELD_MISSING) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    sending_application: str
    sending_facility: str
    message_type: str  # e.g. ADT
    trigger: str  # e.g. A02
    control_id: str
    version: str


def parse(text: str) -> hl7.Message:
    try:
        message = hl7.parse(text.replace("\n", "\r"))
        message.segment("MSH")
    except Exception as exc:  # python-hl7 raises several types for malformed text
        raise Rejected(
            f"not an HL7 v2 message: {type(exc).__name__}", ErrorCode.SEGMENT_SEQUENCE
        ) from exc
    return message


def header(message: hl7.Message) -> Header:
    def field(n: int, component: int = 1) -> str:
        try:
            return str(message.extract_field("MSH", 1, n, 1, component)).strip()
        except (IndexError, KeyError):
            return ""

    # extract_field counts MSH fields from MSH-1 (the separator) like the standard does
    return Header(
        sending_application=field(3),
        sending_facility=field(4),
        message_type=field(9, 1),
        trigger=field(9, 2),
        control_id=field(10),
        version=field(12) or "2.5",
    )


def component(message: hl7.Message, segment: str, field: int, component: int) -> str:
    """A component of the first repetition of a field ('' when absent)."""
    try:
        return str(message.extract_field(segment, 1, field, 1, component)).strip()
    except (IndexError, KeyError):
        return ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientIds:
    nhs_number: str  # valid, or ''
    local: list[tuple[str, str]]  # (issuer, ID), issuer '' when the sender gave none


def patient_ids(message: hl7.Message) -> PatientIds:
    """PID-3: the NHS number and the hospital numbers (``identifiers``)."""
    try:
        pid = message.segment("PID")
    except KeyError as exc:
        raise Rejected("the message has no PID segment") from exc
    return identifiers(pid, 3)


def value(segment: hl7.Segment, field: int, component: int = 1, repeat: int = 1) -> str:
    """A component of one segment ('' when absent): for segments that repeat (ORC, OBR)."""
    try:
        return str(segment.extract_field(1, field, repeat, component)).strip()
    except (IndexError, KeyError):
        return ""


def repeats(segment: hl7.Segment, field: int) -> int:
    """How many repetitions a field has (0 when absent)."""
    if len(segment) <= field or not str(segment[field]):
        return 0
    content = segment[field]
    return len(content) if content and isinstance(content[0], hl7.Repetition) else 1


def identifiers(segment: hl7.Segment, field: int) -> PatientIds:
    """A CX list (PID-3, MRG-1): the NHS number (assigning authority NHS, or identifier
    type NH) and the hospital numbers with their assigning authorities."""
    nhs_number, local = "", []
    for n in range(1, repeats(segment, field) + 1):
        number, authority, kind = (value(segment, field, c, n) for c in (1, 4, 5))
        if not number:
            continue
        if authority.upper() in NHS_AUTHORITIES or kind.upper() == "NH":
            if nhs.is_valid(nhs.normalise(number)):
                nhs_number = nhs.normalise(number)
            continue
        local.append((authority, number))
    return PatientIds(nhs_number=nhs_number, local=local)


def person_name(segment: hl7.Segment, field: int, first: int = 1) -> str:
    """An XPN (family^given^middle^suffix^prefix; in an XCN from component 2) as a DICOM
    PN (family^given^middle^prefix^suffix, PS3.5 6.2)."""
    parts = (value(segment, field, c) for c in range(first, first + 5))
    family, given, middle, suffix, prefix = parts
    return "^".join([family, given, middle, prefix, suffix]).rstrip("^")


_TS = re.compile(r"^(\d{8})(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$")


def timestamp(text: str, where: str) -> float | None:
    """An HL7 TS/DTM (YYYYMMDD[HH[MM[SS[.S]]]][+/-ZZZZ]) as seconds since the epoch;
    without an offset it is local time, as the trust's systems and modalities keep it."""
    if not text:
        return None
    match = _TS.match(text)
    if match is None:
        raise Rejected(f"{where} {text[:40]!r} is not an HL7 date/time", ErrorCode.DATA_TYPE)
    day, hours, minutes, seconds, offset = match.groups()
    try:
        moment = datetime.strptime(
            day + (hours or "00") + (minutes or "00") + (seconds or "00"), "%Y%m%d%H%M%S"
        )
    except ValueError:
        raise Rejected(f"{where} {text[:40]!r} is not a date", ErrorCode.DATA_TYPE) from None
    if offset:
        sign = 1 if offset[0] == "+" else -1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
        return moment.replace(tzinfo=timezone(sign * delta)).timestamp()
    return moment.timestamp()


def ack(head: Header | None, code: str, text: str = "", error: ErrorCode | None = None) -> str:
    """MSH + MSA (AA accepted, AE error: send again, AR rejected: do not), and for an
    error ERR with its HL7 table 0357 code, severity E and the reason (ERR-8)."""
    now = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    trigger = head.trigger if head else ""
    fields = [
        "MSH",
        "^~\\&",
        "RIX",
        "RIX",
        head.sending_application if head else "",
        head.sending_facility if head else "",
        now,
        "",
        f"ACK^{trigger}^ACK",
        f"ACK{time.time_ns()}",
        "P",
        head.version if head else "2.5",
    ]
    # MSA-3 and ERR-8 are read as text: a field separator in the reason would end it
    safe = text.replace("|", "/").replace("\r", " ").replace("\n", " ")[:200]
    msa = ["MSA", code, head.control_id if head else "", safe]
    segments = ["|".join(fields), "|".join(msa)]
    if code != "AA":
        condition = error or ErrorCode.INTERNAL_ERROR
        name = condition.name.replace("_", " ").title()
        segments.append(f"ERR|||{condition.value}^{name}^HL70357|E||||{safe}")
    return "\r".join(segments) + "\r"
