"""Studies matched to their orders: automatically when a study is stable, by hand when
the keys disagree.

A study is matched when it is stable (``match_study``, which the composition root hands
to routing's stability job as its hook): same trust, same accession number (or the Study
Instance UID the worklist gave), same person. Once per study, never per instance: the
match reads the whole study. A study that arrived before its order (an emergency scanned
first) is matched when the order is placed (``match_arrived``). What matches nothing is
listed for reconciliation (``unmatched``) and matched by hand (``match_by_hand``).

Matching moves the order on as the modality's MPPS says (``rix.workflow.procedure_steps``):
completed, unless the step is still in progress or was discontinued.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, exists, or_, select, update

from rix.access import Principal, radiology
from rix.errors import Conflict, NotFound
from rix.index.schema import patients, studies, trusts
from rix.index.workflow_tables import orders, performed_steps
from rix.workflow.orders import (
    Order,
    OrderStatus,
    get,
    is_matched,
    order_of_study,
    select_orders,
)
from rix.workflow.procedure_steps import StepStatus


def _study(conn: Connection, study_uid: str) -> Any:
    return conn.execute(
        select(
            studies.c.study_uid,
            studies.c.trust_pk,
            studies.c.accession_number,
            studies.c.patient_pk,
            studies.c.person_pk,
        ).where(studies.c.study_uid == study_uid)
    ).first()


def _same_patient(order: Order, study: Any) -> bool:
    if order.patient_pk == study.patient_pk:
        return True
    return order.person_pk is not None and order.person_pk == study.person_pk


def match_study(conn: Connection, study_uid: str) -> Order | None:
    """Match a stable study to its order: the study's trust, its accession number or the
    Study Instance UID the worklist gave, and the same person. Returns the order (None:
    no order matches, and the study is listed for reconciliation). Runs once per study,
    from its stability job: nothing per instance."""
    study = _study(conn, study_uid)
    if study is None or study.trust_pk is None:
        return None
    if is_matched(conn, study_uid):  # once matched, even to an order since ended
        return order_of_study(conn, study_uid)
    keys = [orders.c.requested_study_uid == study_uid]
    if study.accession_number:
        keys.append(orders.c.accession_number == study.accession_number)
    candidates = conn.execute(
        select_orders()
        .where(
            orders.c.trust_pk == study.trust_pk,
            orders.c.study_uid.is_(None),
            orders.c.status != OrderStatus.CANCELLED.value,
            or_(*keys),
        )
        .order_by(orders.c.id)
    ).all()
    for row in candidates:
        order = Order.from_row(row)
        if _same_patient(order, study):
            _attach(conn, order, study_uid)
            return get(conn, order.pk)
    return None


def match_arrived(conn: Connection, order: Order) -> None:
    """A study that arrived before its order (an emergency scanned first) is matched as
    soon as the order names its accession number."""
    found = conn.execute(
        select(studies.c.study_uid)
        .where(
            studies.c.trust_pk == order.trust_pk,
            studies.c.accession_number == order.accession_number,
            ~exists(select(orders.c.id).where(orders.c.study_uid == studies.c.study_uid)),
        )
        .order_by(studies.c.id)
    ).all()
    for row in found:
        study = _study(conn, row.study_uid)
        if _same_patient(order, study):
            _attach(conn, order, row.study_uid)
            return


def _attach(conn: Connection, order: Order, study_uid: str) -> None:
    """The study is the order's: completed, unless the modality's MPPS says the step is
    still in progress or was discontinued."""
    step = conn.execute(
        select(performed_steps.c.status)
        .where(performed_steps.c.order_pk == order.pk)
        .order_by(performed_steps.c.id.desc())
    ).scalar()
    status = OrderStatus.COMPLETED
    if step == StepStatus.IN_PROGRESS:
        status = OrderStatus.IN_PROGRESS
    elif step == StepStatus.DISCONTINUED or order.status is OrderStatus.DISCONTINUED:
        status = OrderStatus.DISCONTINUED
    conn.execute(
        update(orders)
        .where(orders.c.id == order.pk)
        .values(study_uid=study_uid, status=status.value, updated_at=time.time())
    )


def unmatched(
    conn: Connection, *, trust_pks: Collection[int] | None, limit: int = 200
) -> list[dict[str, Any]]:
    """Studies of these trusts (None: all) that no order claims, newest first: a wrong or
    missing accession number, a scan done without an order. For reconciliation."""
    query = (
        select(
            studies.c.study_uid,
            studies.c.accession_number,
            studies.c.study_date,
            studies.c.study_description,
            studies.c.modalities,
            studies.c.created_at,
            patients.c.patient_id,
            patients.c.issuer,
            patients.c.patient_name,
            trusts.c.code,
        )
        .join(patients, patients.c.id == studies.c.patient_pk)
        .join(trusts, trusts.c.id == studies.c.trust_pk)
        .where(~exists(select(orders.c.id).where(orders.c.study_uid == studies.c.study_uid)))
        .order_by(studies.c.created_at.desc(), studies.c.id.desc())
        .limit(limit)
    )
    if trust_pks is not None:
        query = query.where(studies.c.trust_pk.in_(list(trust_pks)))
    return [
        {
            "study_uid": r.study_uid,
            "accession_number": r.accession_number,
            "study_date": r.study_date,
            "description": r.study_description,
            "modalities": [m for m in r.modalities.split("\\") if m],
            "patient": f"{r.issuer}/{r.patient_id}",
            "patient_name": r.patient_name,
            "trust": r.code,
            "received_at": r.created_at,
        }
        for r in conn.execute(query)
    ]


def match_by_hand(conn: Connection, principal: Principal, order: Order, study_uid: str) -> Order:
    """A person matches a study to an order (reconciliation): the same trust and the same
    patient, neither already matched elsewhere."""
    radiology.require_order(principal, order.trust)
    study = _study(conn, study_uid)
    if study is None or study.trust_pk != order.trust_pk:
        raise NotFound(f"no study {study_uid} of {order.trust}")
    if order.study_uid == study_uid:
        return order
    if order.study_uid:
        raise Conflict(f"order {order.pk} is matched to another study")
    if order.status is OrderStatus.CANCELLED:
        raise Conflict(f"order {order.pk} is cancelled")
    if is_matched(conn, study_uid):
        raise Conflict("the study is matched to another order")
    if not _same_patient(order, study):
        raise Conflict("the study is another patient's: merge or link the records first")
    _attach(conn, order, study_uid)
    return get(conn, order.pk)
