"""Modality Performed Procedure Steps (PS3.4 F.7): what the modality says it is doing,
kept in ``performed_steps`` and applied to the order it performs.

N-CREATE starts a step IN PROGRESS and moves its order (found by the Scheduled Step
Attributes Sequence: accession number, else the Study Instance UID the worklist gave)
to in-progress; N-SET changes the step until it is COMPLETED or DISCONTINUED, which
completes or discontinues the order. A finished step is never changed again. A step
naming no known order (an unscheduled procedure) is kept all the same.

Each failure is an exception carrying its DIMSE status (``rix.dicom.mpps`` answers it).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import Connection, select, update

from rix import uids
from rix.dataset import parsing
from rix.errors import RixError
from rix.index.workflow_tables import orders as order_rows
from rix.index.workflow_tables import performed_steps
from rix.region.trusts import Trust
from rix.workflow import orders
from rix.workflow.orders import OrderStatus

NO_LONGER_UPDATABLE = 0xA710  # PS3.4 F.7.2.2.2: Error ID of a finished step's N-SET


class StepStatus(StrEnum):
    """Performed Procedure Step Status (0040,0252), PS3.3 C.4.14."""

    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"


ORDER_STATUS = {
    StepStatus.IN_PROGRESS: OrderStatus.IN_PROGRESS,
    StepStatus.COMPLETED: OrderStatus.COMPLETED,
    StepStatus.DISCONTINUED: OrderStatus.DISCONTINUED,
}


class InvalidStep(RixError):
    """An attribute value the step cannot have (PS3.7 C.4.2 0106, Invalid Attribute Value)."""

    dimse_status = 0x0106
    http_status = 400


class DuplicateStep(RixError):
    dimse_status = 0x0111  # Duplicate SOP Instance
    http_status = 409


class UnknownStep(RixError):
    dimse_status = 0x0112  # No Such SOP Instance
    http_status = 404


class FinishedStep(RixError):
    """N-SET of a step already COMPLETED or DISCONTINUED: Processing Failure with Error
    ID A710, "Performed Procedure Step Object may no longer be updated" (PS3.4 F.7.2.2.2)."""

    dimse_status = 0x0110
    http_status = 409
    error_id = NO_LONGER_UPDATABLE


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    sop_uid: str
    status: StepStatus
    order_pk: int | None


def _status(ds: Dataset, *, allowed: frozenset[StepStatus]) -> StepStatus:
    value = parsing.text(ds, "PerformedProcedureStepStatus").upper()
    if value not in {s.value for s in allowed}:
        wanted = " or ".join(sorted(s.value for s in allowed))
        raise InvalidStep(f"Performed Procedure Step Status {value!r} is not {wanted}")
    return StepStatus(value)


def _order_of(conn: Connection, trust: Trust, ds: Dataset) -> orders.Order | None:
    """The order a step performs, from its Scheduled Step Attributes Sequence (or the
    accession number at the top level, as some modalities send it)."""
    items = list(ds.get("ScheduledStepAttributesSequence", None) or [])
    for item in [*items, ds]:
        accession = parsing.text(item, "AccessionNumber")
        if accession:
            found = orders.by_accession(conn, trust.pk, accession)
            if found is not None:
                return found
        study_uid = uids.clean(item.get("StudyInstanceUID", ""))
        if study_uid:
            pk = conn.execute(
                select(order_rows.c.id).where(
                    order_rows.c.trust_pk == trust.pk,
                    order_rows.c.requested_study_uid == study_uid,
                )
            ).scalar()
            if pk is not None:
                return orders.get(conn, int(pk))
    return None


def _json(ds: Dataset) -> str:
    try:
        return json.dumps(ds.to_json_dict(), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidStep(f"the attribute list cannot be read: {exc}"[:200]) from exc


def _time(ds: Dataset, date_keyword: str, time_keyword: str) -> float:
    day, moment = parsing.text(ds, date_keyword), parsing.text(ds, time_keyword)
    try:
        return time.mktime(
            time.strptime(day + (moment.split(".")[0] + "000000")[:6], "%Y%m%d%H%M%S")
        )
    except ValueError:
        return time.time()


def start(conn: Connection, *, trust: Trust, calling_ae: str, sop_uid: str, ds: Dataset) -> Step:
    """N-CREATE: a new step, IN PROGRESS; its order (if any) is now in progress."""
    _status(ds, allowed=frozenset({StepStatus.IN_PROGRESS}))
    if not uids.is_valid(sop_uid):
        raise InvalidStep("the Affected SOP Instance UID is not a UID")
    known = conn.execute(
        select(performed_steps.c.id).where(performed_steps.c.sop_instance_uid == sop_uid)
    ).first()
    if known is not None:
        raise DuplicateStep(f"performed procedure step {sop_uid} exists")
    order = _order_of(conn, trust, ds)
    items = list(ds.get("ScheduledStepAttributesSequence", None) or [])
    first: Any = items[0] if items else ds
    now = time.time()
    conn.execute(
        performed_steps.insert().values(
            sop_instance_uid=sop_uid,
            order_pk=None if order is None else order.pk,
            trust_pk=trust.pk,
            status=StepStatus.IN_PROGRESS.value,
            calling_ae=calling_ae[:16],
            study_uid=uids.clean(first.get("StudyInstanceUID", ""))[:64],
            accession_number=parsing.text(first, "AccessionNumber")[:64],
            modality=parsing.text(ds, "Modality")[:16],
            started_at=_time(
                ds, "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime"
            ),
            attributes=_json(ds),
            created_at=now,
            updated_at=now,
        )
    )
    if order is not None and order.status is OrderStatus.SCHEDULED:
        orders.set_status(conn, order, OrderStatus.IN_PROGRESS)
    return Step(
        sop_uid=sop_uid,
        status=StepStatus.IN_PROGRESS,
        order_pk=None if order is None else order.pk,
    )


def change(conn: Connection, *, trust: Trust, sop_uid: str, ds: Dataset) -> Step:
    """N-SET: the modification list applied to a step still IN PROGRESS; COMPLETED or
    DISCONTINUED finishes it and its order. Another trust's step is unknown here."""
    row = conn.execute(
        select(performed_steps).where(
            performed_steps.c.sop_instance_uid == sop_uid,
            performed_steps.c.trust_pk == trust.pk,
        )
    ).first()
    if row is None:
        raise UnknownStep(f"no performed procedure step {sop_uid}")
    if row.status != StepStatus.IN_PROGRESS.value:
        raise FinishedStep("Performed Procedure Step Object may no longer be updated")
    status = StepStatus(row.status)
    if "PerformedProcedureStepStatus" in ds:
        status = _status(ds, allowed=frozenset(StepStatus))
    stored = Dataset.from_json(row.attributes or "{}")
    for element in ds:
        stored[element.tag] = element
    now = time.time()
    finished = status is not StepStatus.IN_PROGRESS
    conn.execute(
        update(performed_steps)
        .where(performed_steps.c.id == row.id)
        .values(
            status=status.value,
            attributes=_json(stored),
            updated_at=now,
            ended_at=now if finished else None,
        )
    )
    if finished and row.order_pk is not None:
        order = orders.get(conn, int(row.order_pk))
        if order.status is not OrderStatus.CANCELLED:
            orders.set_status(conn, order, ORDER_STATUS[status])
    return Step(sop_uid=sop_uid, status=status, order_pk=row.order_pk)
