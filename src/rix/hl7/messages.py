"""Reading HL7 v2 messages (python-hl7) and writing their acknowledgements."""

from __future__ import annotations

import time
from dataclasses import dataclass

import hl7
from rix.region import nhs

NHS_AUTHORITIES = frozenset({"NHS", "NHSNBR", "2.16.840.1.113883.2.1.4.1"})


class Rejected(ValueError):
    """The message cannot be processed as sent: answered AR (application reject)."""


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
        raise Rejected(f"not an HL7 v2 message: {type(exc).__name__}") from exc
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
    return _part(message, segment, field, 1, component)


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientIds:
    nhs_number: str  # valid, or ''
    local: list[tuple[str, str]]  # (issuer, ID), issuer '' when the sender gave none


def patient_ids(message: hl7.Message) -> PatientIds:
    """PID-3: the NHS number (assigning authority NHS, or identifier type NH) and the
    hospital numbers with their assigning authorities."""
    try:
        pid = message.segment("PID")
    except KeyError as exc:
        raise Rejected("the message has no PID segment") from exc
    field = pid[3] if len(pid) > 3 else None
    repeats = len(field) if field and isinstance(field[0], hl7.Repetition) else 1
    nhs_number, local = "", []
    for n in range(1, repeats + 1):
        value, authority, kind = (_part(message, "PID", 3, n, c) for c in (1, 4, 5))
        if not value:
            continue
        if authority.upper() in NHS_AUTHORITIES or kind.upper() == "NH":
            if nhs.is_valid(nhs.normalise(value)):
                nhs_number = nhs.normalise(value)
            continue
        local.append((authority, value))
    return PatientIds(nhs_number=nhs_number, local=local)


def _part(message: hl7.Message, segment: str, field: int, repeat: int, component: int) -> str:
    try:
        return str(message.extract_field(segment, 1, field, repeat, component)).strip()
    except (IndexError, KeyError):
        return ""


def ack(head: Header | None, code: str, text: str = "") -> str:
    """MSH + MSA (AA accepted, AE error: send again, AR rejected: do not)."""
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
    safe = text.replace("|", "/").replace("\r", " ").replace("\n", " ")[:200]
    msa = ["MSA", code, head.control_id if head else "", safe]
    return "|".join(fields) + "\r" + "|".join(msa) + "\r"
