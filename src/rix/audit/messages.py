"""DICOM audit messages (PS3.15 A.5) for rix's audit events.

Each row of ``audit_events`` becomes one ``AuditMessage`` of the A.5.1 schema, told as
the A.5.3 message its kind corresponds to: a query is A.5.3.12 Query, a retrieve A.5.3.7
DICOM Instances Transferred, a break-glass declaration A.5.3.11 Security Alert with
Emergency Override Started, and so on (``EVENT_TYPES``). An access the policy refused
is reported as a Security Alert, Use of Restricted Function, whatever was attempted, so
that an audit repository's alerts show it; a refused login stays a User Authentication
with a failure outcome, and a duplicate the duplicate policy rejected stays a transfer.

Codes are the DCM ones of PS3.16 CID 400 (event IDs), 401 (event types), 402 (roles)
and 404 (participant object ID types), plus RFC 3881's Patient Number. Whatever text an
event holds, its message is well-formed XML (characters XML 1.0 cannot carry become
U+FFFD), so one odd event cannot hold up the export of all those after it.
"""

from __future__ import annotations

import ipaddress
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row

from rix.audit import Kind, Outcome


@dataclass(frozen=True, slots=True, kw_only=True)
class Code:
    """A coded value (PS3.15 A.5.1 CodedValueType): csd-code, codeSystemName, and the
    code meaning as originalText."""

    value: str
    scheme: str
    meaning: str


def _dcm(value: str, meaning: str) -> Code:
    return Code(value=value, scheme="DCM", meaning=meaning)


# CID 400 Audit Event ID
APPLICATION_ACTIVITY = _dcm("110100", "Application Activity")
INSTANCES_ACCESSED = _dcm("110103", "DICOM Instances Accessed")
INSTANCES_TRANSFERRED = _dcm("110104", "DICOM Instances Transferred")
EXPORT = _dcm("110106", "Export")
QUERY = _dcm("110112", "Query")
SECURITY_ALERT = _dcm("110113", "Security Alert")
USER_AUTHENTICATION = _dcm("110114", "User Authentication")
# CID 401 Audit Event Type Code
LOGIN = _dcm("110122", "Login")
EMERGENCY_OVERRIDE_STARTED = _dcm("110127", "Emergency Override Started")
SECURITY_CONFIGURATION = _dcm("110129", "Security Configuration")
USE_OF_RESTRICTED_FUNCTION = _dcm("110132", "Use of Restricted Function")
OBJECT_SECURITY_ATTRIBUTES_CHANGED = _dcm("110135", "Object Security Attributes Changed")
# CID 402 Audit Active Participant Role ID Code
APPLICATION = _dcm("110150", "Application")
DESTINATION = _dcm("110152", "Destination Role ID")
SOURCE = _dcm("110153", "Source Role ID")
# CID 404 Audit Participant Object ID Type Code, and RFC 3881's for patients (A.5.1.2.4)
STUDY_INSTANCE_UID = _dcm("110180", "Study Instance UID")
PATIENT_NUMBER = Code(value="2", scheme="RFC-3881", meaning="Patient Number")

APPLICATION_SERVER = "4"  # A.5.1.2.1 Audit Source Type Code: application server process
NHS_NUMBER_AUTHORITY = "NHS&2.16.840.1.113883.2.1.4.1&ISO"  # HL7 HD of the NHS number

OUTCOME_INDICATORS: dict[str, str] = {  # A.5.2 EventOutcomeIndicator
    Outcome.SUCCESS: "0",
    Outcome.WARNING: "4",  # minor failure
    Outcome.REFUSED: "4",  # turned down; the caller may retry or ask otherwise
    Outcome.FAILURE: "8",  # serious failure: rix could not complete the action
}


@dataclass(frozen=True, slots=True, kw_only=True)
class EventType:
    """How a kind of rix event is told in PS3.15 A.5.3: the event ID, its action code
    (C, R, U, D or E), an event type code, and the roles (CID 402) of the requesting
    actor and of rix itself."""

    event_id: Code
    action: str
    type_code: Code | None = None
    requestor_role: Code | None = None
    archive_role: Code | None = None


EVENT_TYPES: dict[str, EventType] = {
    Kind.QUERY: EventType(  # A.5.3.12
        event_id=QUERY, action="E", requestor_role=SOURCE, archive_role=DESTINATION
    ),
    Kind.RETRIEVE: EventType(  # A.5.3.7: rix sends, the requestor (or its C-MOVE peer) receives
        event_id=INSTANCES_TRANSFERRED,
        action="R",
        requestor_role=DESTINATION,
        archive_role=SOURCE,
    ),
    Kind.VIEW: EventType(  # A.5.3.6
        event_id=INSTANCES_ACCESSED, action="R", archive_role=APPLICATION
    ),
    Kind.STORE: EventType(  # A.5.3.7: the receiver reports a create
        event_id=INSTANCES_TRANSFERRED,
        action="C",
        requestor_role=SOURCE,
        archive_role=DESTINATION,
    ),
    Kind.STORE_DUPLICATE: EventType(  # A.5.3.7: new bytes for an instance rix holds
        event_id=INSTANCES_TRANSFERRED,
        action="U",
        requestor_role=SOURCE,
        archive_role=DESTINATION,
    ),
    Kind.EXPORT: EventType(event_id=EXPORT, action="R", archive_role=SOURCE),  # A.5.3.8
    Kind.SHARE: EventType(  # A.5.3.11: sharing changes who may see a study
        event_id=SECURITY_ALERT, action="E", type_code=OBJECT_SECURITY_ATTRIBUTES_CHANGED
    ),
    Kind.LOGIN: EventType(event_id=USER_AUTHENTICATION, action="E", type_code=LOGIN),  # A.5.3.13
    Kind.BREAK_GLASS: EventType(  # A.5.3.11
        event_id=SECURITY_ALERT, action="E", type_code=EMERGENCY_OVERRIDE_STARTED
    ),
    Kind.TRANSFER: EventType(  # A.5.3.7: rix sends to a destination it chose by rule or request
        event_id=INSTANCES_TRANSFERRED,
        action="R",
        requestor_role=DESTINATION,
        archive_role=SOURCE,
    ),
    Kind.ADMIN: EventType(  # A.5.3.11: users, roles, AEs, trusts and agreements
        event_id=SECURITY_ALERT, action="E", type_code=SECURITY_CONFIGURATION
    ),
}
REFUSED_ACCESS = EventType(
    event_id=SECURITY_ALERT, action="E", type_code=USE_OF_RESTRICTED_FUNCTION
)
UNKNOWN_KIND = EventType(event_id=APPLICATION_ACTIVITY, action="E")  # a kind added later
KEEP_EVENT_WHEN_REFUSED = frozenset({Kind.LOGIN, Kind.BREAK_GLASS, Kind.STORE_DUPLICATE})


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """One row of ``audit_events`` (see ``rix.audit.record``), as the export reads it."""

    id: int
    at: float
    kind: str
    outcome: str
    actor: str = ""
    source: str = ""
    study_uid: str = ""
    trust: str = ""
    patient: str = ""  # issuer/patient ID
    nhs_number: str = ""

    @classmethod
    def from_row(cls, row: Row[Any]) -> AuditEvent:
        return cls(
            id=row.id,
            at=row.at,
            kind=row.kind,
            outcome=row.outcome,
            actor=row.actor or "",
            source=row.source or "",
            study_uid=row.study_uid or "",
            trust=row.trust or "",
            patient=row.patient or "",
            nhs_number=row.nhs_number or "",
        )


def event_type(event: AuditEvent) -> EventType:
    if event.outcome == Outcome.REFUSED and event.kind not in KEEP_EVENT_WHEN_REFUSED:
        return REFUSED_ACCESS
    return EVENT_TYPES.get(event.kind, UNKNOWN_KIND)


def audit_message(event: AuditEvent, *, source_id: str) -> bytes:
    """The PS3.15 A.5.1 ``AuditMessage`` of ``event`` as UTF-8 XML.

    ``source_id`` names rix as the audit source and as the application taking part (its
    AE title). The requestor is the event's actor at its network address; the study and
    the patient, when the event has them, are participant objects (A.5.3's "Study" and
    "Patient"), the patient once for the trust's ID and once for the NHS number.
    """
    kind = event_type(event)
    root = ET.Element("AuditMessage")
    _event_identification(root, event, kind)
    _active_participant(root, _requestor_id(event), requestor=True, role=kind.requestor_role)
    requestor = root[-1]
    if event.source:
        requestor.set("NetworkAccessPointID", _text(event.source))
        if _is_address(event.source):
            requestor.set("NetworkAccessPointTypeCode", "2")
    _active_participant(root, source_id, requestor=False, role=kind.archive_role)
    source = ET.SubElement(root, "AuditSourceIdentification", AuditSourceID=_text(source_id))
    ET.SubElement(source, "AuditSourceTypeCode", {"csd-code": APPLICATION_SERVER})
    if event.study_uid:
        _participant_object(
            root, event.study_uid, type_code="2", role="3", id_type=STUDY_INSTANCE_UID
        )
    if event.patient:
        _participant_object(
            root, patient_cx(event.patient), type_code="1", role="1", id_type=PATIENT_NUMBER
        )
    if event.nhs_number:
        nhs = f"{hl7_escape(event.nhs_number)}^^^{NHS_NUMBER_AUTHORITY}"
        _participant_object(root, nhs, type_code="1", role="1", id_type=PATIENT_NUMBER)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def _event_identification(root: ET.Element, event: AuditEvent, kind: EventType) -> None:
    when = datetime.fromtimestamp(event.at, tz=UTC).isoformat(timespec="milliseconds")
    identification = ET.SubElement(
        root,
        "EventIdentification",
        EventActionCode=kind.action,
        EventDateTime=when.replace("+00:00", "Z"),  # A.5.2.5: UTC, unambiguous
        EventOutcomeIndicator=OUTCOME_INDICATORS.get(event.outcome, "8"),
    )
    _code(identification, "EventID", kind.event_id)
    if kind.type_code is not None:
        _code(identification, "EventTypeCode", kind.type_code)
    if event.outcome != Outcome.SUCCESS or kind is UNKNOWN_KIND:
        description = ET.SubElement(identification, "EventOutcomeDescription")
        description.text = _text(f"rix {event.kind}: {event.outcome}")


def _active_participant(
    root: ET.Element, user_id: str, *, requestor: bool, role: Code | None
) -> None:
    participant = ET.SubElement(
        root,
        "ActiveParticipant",
        UserID=_text(user_id),
        UserIsRequestor="true" if requestor else "false",
    )
    if role is not None:
        _code(participant, "RoleIDCode", role)


def _participant_object(
    root: ET.Element, object_id: str, *, type_code: str, role: str, id_type: Code
) -> None:
    item = ET.SubElement(
        root,
        "ParticipantObjectIdentification",
        ParticipantObjectID=_text(object_id),
        ParticipantObjectTypeCode=type_code,
        ParticipantObjectTypeCodeRole=role,
    )
    _code(item, "ParticipantObjectIDTypeCode", id_type)


def _code(parent: ET.Element, tag: str, code: Code) -> None:
    ET.SubElement(
        parent,
        tag,
        {"csd-code": code.value, "codeSystemName": code.scheme, "originalText": code.meaning},
    )


def _requestor_id(event: AuditEvent) -> str:
    return event.actor or event.source or "unknown"


def _is_address(source: str) -> bool:
    try:
        ipaddress.ip_address(source.strip("[]"))
    except ValueError:
        return False
    return True


def patient_cx(patient: str) -> str:
    """``issuer/patient ID`` as an HL7 CX (``ID^^^issuer``), as A.5.3 asks for the
    Patient's ParticipantObjectID. The issuer ends at the first ``/``: issuers are trust
    namespaces or OIDs, while hospital numbers may well contain a slash."""
    issuer, slash, patient_id = patient.partition("/")
    if not slash:
        return hl7_escape(patient)
    if not issuer:
        return hl7_escape(patient_id)
    return f"{hl7_escape(patient_id)}^^^{hl7_escape(issuer)}"


_HL7_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"}


def hl7_escape(value: str) -> str:
    """HL7 v2 escape sequences (HL7 2.x chapter 2.7) so an ID cannot split the CX."""
    return "".join(_HL7_ESCAPES.get(c, c) for c in value)


_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: str) -> str:
    """``value`` with the characters XML 1.0 cannot hold (NUL, most C0 controls, lone
    surrogates) replaced, so a bad byte in an actor or UID still yields a parseable
    message; ElementTree escapes ``<``, ``&`` and quotes."""
    return _NOT_XML.sub("\ufffd", value)
