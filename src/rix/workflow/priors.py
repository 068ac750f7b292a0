"""Prefetch on order: a patient's priors from other trusts ready before the appointment.

An order at trust B for a patient with images at trust A queues one ``prefetch`` job
(``rix.routing.prefetch``, the machinery the API uses too): at run time it picks the
priors trust B may see (the order itself is the relationship the access policy reads),
the last ``prefetch_priors`` sharing the order's modality or body part, and sends them
to B's PACS, or reads them once into the cache when B has none.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, select

from rix.config import Priority
from rix.index.schema import patients, studies, trusts
from rix.index.workflow_tables import orders
from rix.jobs import queue
from rix.region.trusts import get_trust
from rix.routing import prefetch
from rix.workflow.orders import ENDED

# how long before the appointment the priors are sent: a PACS that is down for a while
# still has them in time, and priors that arrive between the order and then are included
LEAD_SECONDS = 12 * 3600.0

PRIORITY = {
    Priority.EMERGENCY: queue.Priority.EMERGENCY,
    Priority.INPATIENT: queue.Priority.URGENT,
    Priority.OUTPATIENT: queue.Priority.ROUTINE,
}


def order_key(order_pk: int) -> str:
    """One pending prefetch per order: a rescheduled order moves it, and two orders for one
    patient (a CT head, then an MR knee) each keep their own priors."""
    return f"{prefetch.KIND}:order:{order_pk}"


def schedule_for_order(conn: Connection, order_pk: int) -> None:
    """Queue the prefetch of an order's priors in the caller's transaction.

    Nothing is queued for a cancelled order or a patient with no study at another trust
    (their own PACS holds the rest). Calling it again for the same order (changed,
    rescheduled) updates the pending job instead of adding one.
    """
    row = conn.execute(
        select(
            orders.c.trust_pk,
            orders.c.status,
            orders.c.priority,
            orders.c.modality,
            orders.c.body_part,
            orders.c.scheduled_at,
            patients.c.person_pk,
            trusts.c.code,
        )
        .join(patients, patients.c.id == orders.c.patient_pk)
        .join(trusts, trusts.c.id == orders.c.trust_pk)
        .where(orders.c.id == order_pk)
    ).first()
    if row is None or row.status in ENDED or row.person_pk is None:
        return
    elsewhere = conn.execute(
        select(studies.c.id)
        .where(studies.c.person_pk == row.person_pk, studies.c.trust_pk != row.trust_pk)
        .limit(1)
    ).first()
    if elsewhere is None:
        return
    prefetch.schedule(
        conn,
        person_pk=int(row.person_pk),
        trust=get_trust(conn, row.code),
        modalities=[row.modality] if row.modality else [],
        body_parts=[row.body_part] if row.body_part else [],
        last=None,
        priority=PRIORITY.get(row.priority, queue.Priority.ROUTINE),
        run_at=_due(row.scheduled_at),
        requested_by=f"order:{order_pk}",
        key=order_key(order_pk),
    )


def _due(scheduled_at: float | None) -> float:
    now = time.time()
    if scheduled_at is None:
        return now
    return max(now, scheduled_at - LEAD_SECONDS)
