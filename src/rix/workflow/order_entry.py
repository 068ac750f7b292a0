"""Order entry: an order placed, changed, cancelled or discontinued at a trust, by its
own system (``rix.hl7.orders``) or the REST API (``rix.web.api.orders``).

An order names one of the trust's own patient records (made now when the trust has
none, and linked by NHS number through the MPI). Three things follow from placing one,
in the same transaction:

- a legitimate relationship (kind ``order``) at the trust for the person, which the
  access policy reads: the trust's staff may now see the patient's images at partner
  trusts (DESIGN.md, "Access");
- the prefetch of the patient's priors (``rix.workflow.priors``);
- an accession number (when the order has none: unique per trust) and a Study Instance
  UID for the modality to use; a study that arrived first under that accession number is
  matched at once (``rix.workflow.order_matching``).

Functions take the caller's connection and change nothing outside it: the front ends
commit the change with its audit event.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pydicom.uid import generate_uid
from sqlalchemy import Connection, update

from rix.access import Principal, grounds, radiology
from rix.config import Priority
from rix.errors import Conflict
from rix.index.workflow_tables import orders
from rix.region import mpi
from rix.region import patients as records
from rix.region.trusts import Trust, get_trust
from rix.workflow import order_matching, priors
from rix.workflow.orders import (
    ACTIVE,
    CHANGEABLE,
    LIMITS,
    SUBSPECIALTY_OF_BODY_PART,
    Order,
    OrderDetails,
    OrderStatus,
    by_accession,
    get,
    placed,
    set_status,
)

ACCESSION_PREFIX = "RIX"


def _checked(values: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(values) - set(CHANGEABLE)
    if unknown:
        raise Conflict(f"an order has no field {', '.join(sorted(unknown))}")
    out = dict(values)
    for name, limit in LIMITS.items():
        if name in out and len(str(out[name])) > limit:
            raise Conflict(f"{name} is longer than {limit} characters")
    if "priority" in out:
        out["priority"] = Priority(out["priority"]).value
    if "modality" in out:
        out["modality"] = str(out["modality"]).upper()
    if "body_part" in out:
        out["body_part"] = str(out["body_part"]).upper()
    return out


def create(
    conn: Connection,
    principal: Principal,
    *,
    trust: Trust,
    patient: records.Details,
    details: OrderDetails,
    source: str,
) -> tuple[Order, bool]:
    """A new order for one of the trust's records; (order, False) when the placer sent
    one already known with this placer number for the same record (a resend after a
    lost acknowledgement), unchanged."""
    radiology.require_order(principal, trust.code)
    if patient.issuer != trust.issuer:
        raise Conflict(f"{patient.ref} is not a patient record of {trust.code}")
    values = _checked(details.values())
    patient_pk = records.ensure(conn, patient)
    known = placed(conn, trust.pk, placer=details.placer_number)
    if known is not None:
        if known.patient_pk != patient_pk:
            raise Conflict(f"placer number {details.placer_number} is another patient's order")
        return known, False
    accession = values.get("accession_number", "")
    if accession and by_accession(conn, trust.pk, accession) is not None:
        raise Conflict(f"accession number {accession} is another order's at {trust.code}")
    values.setdefault(
        "subspecialty", SUBSPECIALTY_OF_BODY_PART.get(values.get("body_part", ""), "")
    )
    now = time.time()
    result = conn.execute(
        orders.insert().values(
            trust_pk=trust.pk,
            patient_pk=patient_pk,
            status=OrderStatus.SCHEDULED.value,
            priority=values.pop("priority", Priority.OUTPATIENT.value),
            requested_study_uid=values.pop("requested_study_uid", "") or str(generate_uid()),
            ordered_at=values.pop("ordered_at", now),
            source=source[:8],
            created_at=now,
            updated_at=now,
            **values,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    pk = int(key[0])
    accession = accession or _new_accession(conn, trust.pk, pk)
    conn.execute(
        update(orders)
        .where(orders.c.id == pk)
        .values(
            accession_number=accession,
            requested_procedure_id=values.get("requested_procedure_id") or accession,
        )
    )
    person = mpi.person_of(conn, patient_pk)
    grounds.record_relationship(
        conn, principal, trust=trust, person_pk=person, kind="order", reference=accession
    )
    order = get(conn, pk)
    order_matching.match_arrived(conn, order)
    priors.schedule_for_order(conn, pk)
    return get(conn, pk), True


def _new_accession(conn: Connection, trust_pk: int, pk: int) -> str:
    """RIX<order id>, with a suffix in the unlikely case the placer used it already."""
    candidate, n = f"{ACCESSION_PREFIX}{pk}", 1
    while by_accession(conn, trust_pk, candidate) is not None:
        candidate, n = f"{ACCESSION_PREFIX}{pk}-{n}", n + 1
    return candidate[:16]


def change(
    conn: Connection, principal: Principal, order: Order, values: Mapping[str, Any]
) -> Order:
    """Change what an open order says (HL7 XO, PATCH); a finished one is history."""
    radiology.require_order(principal, order.trust)
    if order.status not in ACTIVE:
        raise Conflict(f"order {order.pk} is {order.status.value}: it can no longer change")
    checked = _checked(values)
    accession = checked.get("accession_number")
    if accession and accession != order.accession_number:
        if by_accession(conn, order.trust_pk, accession) is not None:
            raise Conflict(f"accession number {accession} is another order's")
        person = mpi.person_of(conn, order.patient_pk)
        grounds.record_relationship(
            conn,
            principal,
            trust=get_trust(conn, order.trust),
            person_pk=person,
            kind="order",
            reference=accession,
        )
    if checked:
        conn.execute(
            update(orders).where(orders.c.id == order.pk).values(updated_at=time.time(), **checked)
        )
    priors.schedule_for_order(conn, order.pk)
    return get(conn, order.pk)


def cancel(
    conn: Connection, principal: Principal, order: Order, *, discontinue: bool = False
) -> Order:
    """Cancel an order not yet started (HL7 CA), or discontinue one started (DC). A
    cancelled order was never carried out: its relationship ends with it, so an order
    placed in error does not keep a patient's images open to the trust."""
    radiology.require_order(principal, order.trust)
    wanted = OrderStatus.DISCONTINUED if discontinue else OrderStatus.CANCELLED
    if order.status is wanted:
        return order
    allowed = ACTIVE if discontinue else frozenset({OrderStatus.SCHEDULED})
    if order.status not in allowed:
        hint = " (discontinue it instead)" if order.status is OrderStatus.IN_PROGRESS else ""
        raise Conflict(f"order {order.pk} is {order.status.value}{hint}")
    set_status(conn, order, wanted)
    if wanted is OrderStatus.CANCELLED and order.person_pk is not None:
        grounds.end_order_relationship(
            conn,
            trust_pk=order.trust_pk,
            person_pk=order.person_pk,
            reference=order.accession_number,
        )
    return get(conn, order.pk)
