"""Imaging orders over HL7 v2: ORM^O01 and OMI^O23, applied through
``rix.workflow.orders``.

ORC-1 says what to do with each order group (ORC and its OBR, TQ1, IPC, ZDS):
NW new, XO change, CA cancel, DC discontinue, SC status changed (ORC-5). An order is
known by its placer number (ORC-2, else OBR-2) or filler number (ORC-3, else OBR-3).
Where IHE Scheduled Workflow puts the imaging keys: accession number in IPC-1 or
OBR-18, requested procedure ID in IPC-2 or OBR-19, Study Instance UID in IPC-3 or
ZDS-1, modality in IPC-5 or OBR-24, scheduled station AE in IPC-9; the procedure in
OBR-4, the body part in OBR-15.4, the scheduled time in TQ1-7, OBR-36 or ORC-7.4.

Priority (what turnaround targets key on): STAT (S) in TQ1-9, ORC-7.6 or OBR-27.6 is an
emergency; otherwise the patient class (PV1-2) decides: E emergency, I inpatient,
anything else outpatient.

The sender is checked as for ADT (``adt.sender_trust``): the orders are MSH-4's trust's.
Every group is read and checked before anything is written, then all are applied in one
transaction: a message is applied whole or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

import hl7
from rix import audit, uids
from rix.access import Principal, trail
from rix.archive import Archive
from rix.config import Priority
from rix.errors import Conflict
from rix.hl7 import adt, messages
from rix.hl7.messages import ErrorCode, Header, Rejected
from rix.hl7.patients import local_record, segments
from rix.index.database import begin_write
from rix.region import patients as records
from rix.region.trusts import Trust
from rix.workflow import order_entry, orders
from rix.workflow.orders import OrderDetails, OrderStatus

CONTROLS = frozenset({"NW", "XO", "CA", "DC", "SC"})
ORDER_STATUS = {  # HL7 table 0038, ORC-5
    "SC": OrderStatus.SCHEDULED,
    "IP": OrderStatus.IN_PROGRESS,
    "CM": OrderStatus.COMPLETED,
    "CA": OrderStatus.CANCELLED,
    "DC": OrderStatus.DISCONTINUED,
}
PATIENT_CLASS = {"E": Priority.EMERGENCY, "I": Priority.INPATIENT}
GROUP_SEGMENTS = frozenset({"OBR", "TQ1", "IPC", "ZDS"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    """One order group, read and checked."""

    control: str  # ORC-1
    status: str  # ORC-5
    details: OrderDetails


def _groups(message: hl7.Message) -> list[dict[str, hl7.Segment]]:
    groups: list[dict[str, hl7.Segment]] = []
    for segment in message:
        name = str(segment[0])
        if name == "ORC":
            groups.append({"ORC": segment})
        elif name in GROUP_SEGMENTS and groups:
            groups[-1].setdefault(name, segment)
    if not groups:
        raise Rejected("the message has no ORC segment", ErrorCode.SEGMENT_SEQUENCE)
    return groups


def _value(group: dict[str, hl7.Segment], *places: tuple[str, int, int]) -> str:
    """The first non-empty of (segment, field, component) in the group."""
    for name, field, component in places:
        segment = group.get(name)
        if segment is not None:
            found = messages.value(segment, field, component)
            if found:
                return found
    return ""


def _priority(group: dict[str, hl7.Segment], patient_class: str) -> Priority:
    code = _value(group, ("TQ1", 9, 1), ("ORC", 7, 6), ("OBR", 27, 6)).upper()
    if code in ("S", "STAT"):
        return Priority.EMERGENCY
    return PATIENT_CLASS.get(patient_class.upper(), Priority.OUTPATIENT)


def _provider(group: dict[str, hl7.Segment]) -> str:
    for name, field in (("ORC", 12), ("OBR", 16)):
        segment = group.get(name)
        if segment is not None and messages.value(segment, field, 2):
            return messages.person_name(segment, field, first=2)
    return ""


def _read(group: dict[str, hl7.Segment], patient_class: str) -> Group:
    control = _value(group, ("ORC", 1, 1)).upper()
    if control not in CONTROLS:
        raise Rejected(
            f"rix does not process ORC-1 {control or '(empty)'}", ErrorCode.TABLE_VALUE_NOT_FOUND
        )
    placer = _value(group, ("ORC", 2, 1), ("OBR", 2, 1))
    filler = _value(group, ("ORC", 3, 1), ("OBR", 3, 1))
    if not placer and not filler:
        raise Rejected("ORC-2 and ORC-3 name no order")
    study_uid = _value(group, ("IPC", 3, 1), ("ZDS", 1, 1))
    if study_uid and not uids.is_valid(study_uid):
        raise Rejected(f"{study_uid[:70]!r} is not a Study Instance UID", ErrorCode.DATA_TYPE)
    scheduled = _value(group, ("TQ1", 7, 1), ("OBR", 36, 1), ("ORC", 7, 4))
    details = OrderDetails(
        placer_number=placer,
        filler_number=filler,
        accession_number=_value(group, ("IPC", 1, 1), ("OBR", 18, 1)),
        requested_procedure_id=_value(group, ("IPC", 2, 1), ("OBR", 19, 1)),
        priority=_priority(group, patient_class),
        modality=_value(group, ("IPC", 5, 1), ("OBR", 24, 1)).upper(),
        body_part=_value(group, ("OBR", 15, 4)).upper(),
        procedure_code=_value(group, ("OBR", 4, 1)),
        procedure_text=_value(group, ("OBR", 4, 2)),
        station_ae=_value(group, ("IPC", 9, 1)),
        ordering_provider=_provider(group),
        reason=_value(group, ("OBR", 31, 2), ("OBR", 31, 1), ("OBR", 13, 1)),
        ordered_at=messages.timestamp(_value(group, ("ORC", 9, 1)), "ORC-9"),
        scheduled_at=messages.timestamp(scheduled, "the scheduled time"),
        requested_study_uid=study_uid,
    )
    for name, limit in orders.LIMITS.items():
        if len(str(getattr(details, name))) > limit:
            raise Rejected(f"{name} is longer than {limit} characters", ErrorCode.DATA_TYPE)
    return Group(control=control, status=_value(group, ("ORC", 5, 1)).upper(), details=details)


def _existing(
    conn: Connection, trust: Trust, patient: records.Details, group: Group
) -> orders.Order:
    found = orders.placed(
        conn, trust.pk, placer=group.details.placer_number, filler=group.details.filler_number
    )
    if found is None:
        number = group.details.placer_number or group.details.filler_number
        raise Rejected(f"no order {number} at {trust.code}", ErrorCode.UNKNOWN_KEY)
    if found.patient != patient.ref:
        raise Conflict(f"order {found.pk} is another patient's")
    return found


def _apply(
    conn: Connection, principal: Principal, trust: Trust, patient: records.Details, group: Group
) -> tuple[orders.Order, str]:
    if group.control == "NW":
        order, created = order_entry.create(
            conn, principal, trust=trust, patient=patient, details=group.details, source="hl7"
        )
        return order, "placed" if created else "already known"
    order = _existing(conn, trust, patient, group)
    if group.control == "XO":
        return order_entry.change(conn, principal, order, group.details.values()), "changed"
    if group.control in ("CA", "DC"):
        return order_entry.cancel(
            conn, principal, order, discontinue=group.control == "DC"
        ), "ended"
    status = ORDER_STATUS.get(group.status)
    if status is None:
        raise Rejected(
            f"ORC-5 {group.status!r} is no order status", ErrorCode.TABLE_VALUE_NOT_FOUND
        )
    if status in (OrderStatus.CANCELLED, OrderStatus.DISCONTINUED):
        return order_entry.cancel(
            conn, principal, order, discontinue=status is OrderStatus.DISCONTINUED
        ), "ended"
    orders.set_status(conn, order, status)
    return orders.get(conn, order.pk), "status changed"


def handle_order(archive: Archive, message: hl7.Message, head: Header, source: str) -> str:
    """ORM^O01 and OMI^O23: every order group of the message, or none."""
    pid = segments(message, "PID")[0]
    patient_class = messages.component(message, "PV1", 2, 1)
    groups = [_read(g, patient_class) for g in _groups(message)]
    trust = adt.sender_trust(archive, head, source)
    principal = adt.feed_principal(head, source, trust)
    notes = []
    with begin_write(archive.engine) as conn:
        patient = local_record(conn, pid, trust)
        for group in groups:
            order, what = _apply(conn, principal, trust, patient, group)
            trail.record_in(
                conn,
                principal,
                audit.Kind.ADMIN,
                audit.Outcome.SUCCESS,
                order.touched,
                {
                    "action": f"order {group.control}",
                    "order": order.pk,
                    "via": f"{head.message_type}^{head.trigger}",
                    "control": head.control_id,
                },
            )
            notes.append(f"order {order.pk} {what}: {order.accession_number} {order.status}")
    return "; ".join(notes)


HANDLERS: dict[tuple[str, str], adt.Handler] = {
    ("ORM", "O01"): handle_order,
    ("OMI", "O23"): handle_order,
}
