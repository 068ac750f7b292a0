"""ADT messages rix acts on: A02 (transfer a patient) and A12 (cancel the transfer).

The receiving trust is the facility of the new location (PV1-3.4), else the sending
facility (MSH-4); the trust the patient comes from is the prior location's (PV1-6.4).
The patient is named by NHS number when PID-3 carries a valid one, else by the hospital
number with its assigning authority (or the receiving trust's issuer).
"""

from __future__ import annotations

from collections.abc import Callable

import hl7
from rix.access import Principal, PrincipalKind
from rix.archive import Archive
from rix.hl7 import messages
from rix.hl7.messages import Header, Rejected
from rix.region.trusts import get_trust
from rix.routing import transfer

Handler = Callable[[Archive, hl7.Message, Header, str], str]


def _named(archive: Archive, message: hl7.Message, trust_code: str) -> tuple[str, str]:
    """(NHS number, '') or ('', issuer/hospital number)."""
    ids = messages.patient_ids(message)
    if ids.nhs_number:
        return ids.nhs_number, ""
    if not ids.local:
        raise Rejected("PID-3 names no patient")
    authority, value = ids.local[0]
    if not authority:
        with archive.engine.connect() as conn:
            authority = get_trust(conn, trust_code).issuer
    return "", f"{authority}/{value}"


def _trusts(message: hl7.Message, head: Header) -> tuple[str, str]:
    to_trust = messages.component(message, "PV1", 3, 4) or head.sending_facility
    if not to_trust:
        raise Rejected("neither PV1-3 nor MSH-4 names the receiving trust")
    return to_trust.upper(), messages.component(message, "PV1", 6, 4).upper()


def _principal(head: Header, source: str) -> Principal:
    """The feed acts for rix: who sent it is in the audit trail."""
    return Principal(
        kind=PrincipalKind.SYSTEM,
        name=f"hl7:{head.sending_application}@{head.sending_facility}",
        source=source,
    )


def transfer_patient(archive: Archive, message: hl7.Message, head: Header, source: str) -> str:
    to_trust, from_trust = _trusts(message, head)
    nhs_number, patient = _named(archive, message, to_trust)
    job = transfer.request(
        archive,
        _principal(head, source),
        to_trust=to_trust,
        from_trust=from_trust,
        nhs_number=nhs_number,
        patient=patient,
        reference=f"ADT^A02 {head.control_id}",
    )
    return f"transfer queued as job {job}"


def cancel_transfer(archive: Archive, message: hl7.Message, head: Header, source: str) -> str:
    to_trust, _from = _trusts(message, head)
    nhs_number, patient = _named(archive, message, to_trust)
    cancelled = transfer.cancel(
        archive,
        _principal(head, source),
        to_trust=to_trust,
        nhs_number=nhs_number,
        patient=patient,
    )
    return f"{cancelled} transfer jobs cancelled"


HANDLERS: dict[tuple[str, str], Handler] = {
    ("ADT", "A02"): transfer_patient,
    ("ADT", "A12"): cancel_transfer,
}
