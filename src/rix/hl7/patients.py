"""ADT messages about who a patient is: A01 (admit), A03 (discharge), A08 (update patient
information) and A40 (merge patient: MRG-1 into PID-3), applied to the trust's records
and the MPI (``rix.region.patients``).

Only a trust's own system speaks for its records: MSH-4 must be the trust and the
connection must come from a host registered for one of its AEs (``adt.sender_trust``).
PID-3 must carry a hospital number of the trust (its issuer, or no assigning authority);
an NHS number alone names the trust's record of that person when it has one. Each
message is applied in one transaction with its audit events: refused, nothing changes.
An admission is an encounter, the legitimate relationship the access policy reads, and
its discharge ends it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from sqlalchemy import Connection

import hl7
from rix import audit
from rix.access import Principal, grounds, trail
from rix.archive import Archive
from rix.hl7 import adt, messages
from rix.hl7.messages import ErrorCode, Header, Rejected
from rix.index.database import begin_write
from rix.region import mpi
from rix.region import patients as records
from rix.region.trusts import Trust

SEXES = {"M": "M", "F": "F", "O": "O", "A": "O", "N": "O"}


def local_record(
    conn: Connection, segment: hl7.Segment, trust: Trust, *, field: int = 3
) -> records.Details:
    """The trust's record a PID names (PID-3, or MRG-1), with PID-5, PID-7 and PID-8."""
    where = f"{segment[0]}-{field}"
    ids = messages.identifiers(segment, field)
    own = [pid for authority, pid in ids.local if authority in ("", trust.issuer, trust.code)]
    if ids.local and not own:
        raise Rejected(
            f"{where} names no hospital number of {trust.code} (issuer {trust.issuer})",
            ErrorCode.UNKNOWN_KEY,
        )
    patient_id = own[0] if own else _by_nhs_number(conn, ids.nhs_number, trust, where)
    return records.Details(
        patient_id=patient_id,
        issuer=trust.issuer,
        name=messages.person_name(segment, 5),
        birth_date=messages.value(segment, 7)[:8],
        sex=SEXES.get(messages.value(segment, 8).upper(), ""),
        nhs_number=ids.nhs_number,
    )


def _by_nhs_number(conn: Connection, nhs_number: str, trust: Trust, where: str) -> str:
    if not nhs_number:
        raise Rejected(f"{where} names no patient")
    person = mpi.find_person(conn, nhs_number)
    found = [] if person is None else mpi.records_of_person(conn, person)
    own = [r for r in found if r.issuer == trust.issuer]
    if not own:
        raise Rejected(
            f"{where} has no hospital number and {trust.code} has no record of the NHS number",
            ErrorCode.UNKNOWN_KEY,
        )
    return own[0].patient_id


def segments(message: hl7.Message, name: str) -> list[hl7.Segment]:
    found = [s for s in message if str(s[0]) == name]
    if not found:
        raise Rejected(f"the message has no {name} segment", ErrorCode.SEGMENT_SEQUENCE)
    return found


def _audit(
    conn: Connection,
    principal: Principal,
    action: str,
    rec: mpi.Record,
    head: Header,
    **detail: object,
) -> None:
    trail.record_in(
        conn,
        principal,
        audit.Kind.ADMIN,
        audit.Outcome.SUCCESS,
        trail.Touched(patient=rec.ref, nhs_number=rec.nhs_number),
        {
            "action": action,
            "via": f"{head.message_type}^{head.trigger}",
            "control": head.control_id,
            **detail,
        },
    )


def _apply(
    archive: Archive,
    head: Header,
    source: str,
    change: Callable[[Connection, Trust, Principal], str],
) -> str:
    trust = adt.sender_trust(archive, head, source)
    principal = adt.feed_principal(head, source, trust)
    with begin_write(archive.engine) as conn:
        return change(conn, trust, principal)


def update_patient(archive: Archive, message: hl7.Message, head: Header, source: str) -> str:
    """A08: the record as the trust's system now describes it (made if new)."""
    pid = segments(message, "PID")[0]

    def change(conn: Connection, trust: Trust, principal: Principal) -> str:
        details = local_record(conn, pid, trust)
        pk = records.ensure(conn, details)
        rec = records.update_details(conn, pk, details)
        _audit(conn, principal, "patient update", rec, head)
        return f"patient {rec.ref} updated"

    return _apply(archive, head, source, change)


def admit(archive: Archive, message: hl7.Message, head: Header, source: str) -> str:
    """A01: the record, and an encounter at the trust (PV1-19 visit number)."""
    pid = segments(message, "PID")[0]
    visit = messages.component(message, "PV1", 19, 1) or f"{head.trigger} {head.control_id}"

    def change(conn: Connection, trust: Trust, principal: Principal) -> str:
        details = local_record(conn, pid, trust)
        pk = records.ensure(conn, details)
        rec = records.update_details(conn, pk, details)
        grounds.record_relationship(
            conn,
            principal,
            trust=trust,
            person_pk=mpi.person_of(conn, pk),
            kind="encounter",
            reference=visit[:128],
        )
        _audit(conn, principal, "patient admit", rec, head)
        return f"patient {rec.ref} admitted"

    return _apply(archive, head, source, change)


def _discharged_at(message: hl7.Message) -> float:
    """When the patient left: PV1-45 (Discharge Date/Time), else EVN-6 (Event Occurred),
    else now."""
    for segment, field in (("PV1", 45), ("EVN", 6)):
        text = messages.component(message, segment, field, 1)
        moment = messages.timestamp(text, f"{segment}-{field}")
        if moment is not None:
            return moment
    return time.time()


def discharge(archive: Archive, message: hl7.Message, head: Header, source: str) -> str:
    """A03: the record as A08 updates it, and the end of the encounter the admission began
    (PV1-19; every open encounter of the patient at the trust when it names none) at the
    discharge time: what the admission opened at partner trusts closes to the trust's
    staff with it, while its orders and referrals still hold."""
    pid = segments(message, "PID")[0]
    visit = messages.component(message, "PV1", 19, 1)
    left = _discharged_at(message)

    def change(conn: Connection, trust: Trust, principal: Principal) -> str:
        details = local_record(conn, pid, trust)
        pk = records.ensure(conn, details)
        rec = records.update_details(conn, pk, details)
        ended = grounds.end_encounters(
            conn,
            trust_pk=trust.pk,
            person_pk=mpi.person_of(conn, pk),
            reference=visit[:128],
            at=left,
        )
        _audit(conn, principal, "patient discharge", rec, head, encounters_ended=ended)
        return f"patient {rec.ref} discharged ({ended} encounters ended)"

    return _apply(archive, head, source, change)


def _pairs(message: hl7.Message) -> Iterator[tuple[hl7.Segment, hl7.Segment]]:
    """(PID, MRG) of each patient group of an A40."""
    pid: hl7.Segment | None = None
    for segment in message:
        name = str(segment[0])
        if name == "PID":
            pid = segment
        elif name == "MRG":
            if pid is None:
                raise Rejected("MRG before its PID", ErrorCode.SEGMENT_SEQUENCE)
            yield pid, segment
            pid = None


def merge_patients(archive: Archive, message: hl7.Message, head: Header, source: str) -> str:
    """A40: the record of MRG-1 merged into the record of PID-3 (made if new)."""
    pairs = list(_pairs(message))
    if not pairs:
        raise Rejected("the message has no PID and MRG segments", ErrorCode.SEGMENT_SEQUENCE)

    def change(conn: Connection, trust: Trust, principal: Principal) -> str:
        notes = []
        for pid, mrg in pairs:
            surviving = local_record(conn, pid, trust)
            prior = local_record(conn, mrg, trust, field=1)
            prior_rec = records.record_of(conn, prior.issuer, prior.patient_id)
            surviving_pk = records.ensure(conn, surviving)
            moved = records.merge(
                conn,
                prior_pk=prior_rec.pk,
                surviving_pk=surviving_pk,
                by=principal.name,
                reference=f"{trust.code}:{head.control_id}",
            )
            rec = mpi.record(conn, surviving_pk)
            _audit(conn, principal, f"patient merge of {prior_rec.ref}", rec, head)
            notes.append(f"{prior_rec.ref} merged into {rec.ref} ({moved} studies)")
        return "; ".join(notes)

    return _apply(archive, head, source, change)


HANDLERS: dict[tuple[str, str], adt.Handler] = {
    ("ADT", "A01"): admit,
    ("ADT", "A03"): discharge,
    ("ADT", "A08"): update_patient,
    ("ADT", "A40"): merge_patients,
}
