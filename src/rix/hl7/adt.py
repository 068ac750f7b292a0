"""ADT messages rix acts on: A02 (transfer a patient) and A12 (cancel the transfer).

The receiving trust is the facility of the new location (PV1-3.4), else the sending
facility (MSH-4); the trust the patient comes from is the prior location's (PV1-6.4).
Only the receiving trust's own systems announce arrivals: MSH-4 must be that trust, and
the connection must come from a host registered for one of its AEs.
The patient is named by NHS number when PID-3 carries a valid one, else by the hospital
number with its assigning authority (or the receiving trust's issuer).
"""

from __future__ import annotations

from collections.abc import Callable

import hl7
from rix.access import Principal, PrincipalKind
from rix.archive import Archive
from rix.errors import AccessDenied
from rix.hl7 import messages
from rix.hl7.messages import Header, Rejected
from rix.region import aes
from rix.region.trusts import Trust, get_trust
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


def sender_trust(archive: Archive, head: Header, source: str) -> Trust:
    """The trust whose system sent the message: MSH-4 names it, and the connection must
    come from the host of one of its registered AEs (MLLP itself authenticates nobody,
    and a transfer or an order opens a patient's images to the trust's staff)."""
    with archive.engine.connect() as conn:
        trust = get_trust(conn, head.sending_facility or "?")
    hosts = [ae for ae in aes.all_aes(archive.engine) if ae.trust and ae.trust.pk == trust.pk]
    if not any(aes.connects_from(ae, source) for ae in hosts):
        raise AccessDenied(f"{source} is not a registered host of trust {trust.code}")
    return trust


def feed_principal(head: Header, source: str, trust: Trust | None = None) -> Principal:
    """A trust's own system: it acts as rix on the trust's behalf (``sender_trust`` has
    checked who it is); the application and facility name it in the audit trail."""
    return Principal(
        kind=PrincipalKind.SYSTEM,
        name=f"hl7:{head.sending_application}@{head.sending_facility}",
        source=source,
        trust=trust,
    )


def _principal(archive: Archive, head: Header, source: str, to_trust: str) -> Principal:
    """The feed acts for rix on behalf of the receiving trust's own system, which alone
    announces who arrives there; who sent it is in the audit trail."""
    sender = sender_trust(archive, head, source)
    if sender.code != to_trust:
        raise AccessDenied(f"trust {sender.code} cannot announce a transfer to {to_trust}")
    return feed_principal(head, source)


def transfer_patient(archive: Archive, message: hl7.Message, head: Header, source: str) -> str:
    to_trust, from_trust = _trusts(message, head)
    nhs_number, patient = _named(archive, message, to_trust)
    job = transfer.request(
        archive,
        _principal(archive, head, source, to_trust),
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
        _principal(archive, head, source, to_trust),
        to_trust=to_trust,
        nhs_number=nhs_number,
        patient=patient,
    )
    return f"{cancelled} transfer jobs cancelled"


HANDLERS: dict[tuple[str, str], Handler] = {
    ("ADT", "A02"): transfer_patient,
    ("ADT", "A12"): cancel_transfer,
}
