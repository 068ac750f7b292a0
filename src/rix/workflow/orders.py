"""Imaging orders at a trust, as the index keeps them: what an order says, its status, and
the reads every front end shares.

An order comes from the trust's own system (HL7 ORM^O01/OMI^O23, ``rix.hl7.orders``) or
the REST API (``rix.web.api.orders``), through ``rix.workflow.order_entry``; the Modality
Worklist answers from it (``rix.dicom.worklist``), MPPS moves its status
(``rix.workflow.procedure_steps``) and a stable study is matched to it
(``rix.workflow.order_matching``).

What an order says is declared once, in ``OrderDetails`` and ``LIMITS``: the HL7 reader,
the REST API's request bodies and the demo all build from them, so a field added here is
a field everywhere.

Functions take the caller's connection and change nothing outside it: the front ends
commit the change with its audit event.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Connection, ScalarSelect, Select, case, func, select, update

from rix import audit
from rix.access import Principal, radiology, trail
from rix.archive import Archive
from rix.config import Priority
from rix.errors import AccessDenied, Conflict, NotFound
from rix.index.schema import patients, trusts
from rix.index.workflow_tables import orders
from rix.region import patients as records
from rix.region.trusts import get_trust


class OrderStatus(StrEnum):
    """``orders.status``: HL7 table 0038 (ORC-5) as rix names it."""

    SCHEDULED = "scheduled"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    DISCONTINUED = "discontinued"


# an order that may still change: not finished, not ended
ACTIVE = frozenset({OrderStatus.SCHEDULED, OrderStatus.IN_PROGRESS})
# an order that was never carried out, or stopped: no study is timed or reported by it
ENDED = (OrderStatus.CANCELLED, OrderStatus.DISCONTINUED)


# the reporting worklist's sub-specialty when the order names none (by body part)
SUBSPECIALTY_OF_BODY_PART = {
    "HEAD": "neuro",
    "BRAIN": "neuro",
    "SPINE": "neuro",
    "CSPINE": "neuro",
    "NECK": "head-neck",
    "CHEST": "chest",
    "LUNG": "chest",
    "ABDOMEN": "abdominal",
    "PELVIS": "abdominal",
    "KNEE": "msk",
    "SHOULDER": "msk",
    "HIP": "msk",
    "HAND": "msk",
    "FOOT": "msk",
    "ANKLE": "msk",
    "WRIST": "msk",
    "ELBOW": "msk",
    "BREAST": "breast",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderDetails:
    """What the placer says about an order (a new one, or a change: empty is unchanged).
    The one declaration of an order's fields."""

    placer_number: str = ""
    filler_number: str = ""
    accession_number: str = ""
    requested_procedure_id: str = ""
    priority: Priority = Priority.OUTPATIENT
    modality: str = ""
    body_part: str = ""
    procedure_code: str = ""
    procedure_text: str = ""
    subspecialty: str = ""
    site_code: str = ""
    station_ae: str = ""
    ordering_provider: str = ""
    reason: str = ""
    ordered_at: float | None = None
    scheduled_at: float | None = None
    requested_study_uid: str = ""  # when the placer made one (OMI IPC-3, ZDS-1)

    def values(self) -> dict[str, Any]:
        """The columns this names (empty text and None left out)."""
        out: dict[str, Any] = {}
        for name in CHANGEABLE:
            value = getattr(self, name)
            if value not in ("", None):
                out[name] = str(value) if isinstance(value, StrEnum) else value
        return out


CHANGEABLE = tuple(f.name for f in dataclasses.fields(OrderDetails))
# the columns' lengths (``orders``); the fields not named here are free text
LIMITS = {
    "placer_number": 64,
    "filler_number": 64,
    "accession_number": 16,  # DICOM SH
    "requested_procedure_id": 16,
    "priority": 16,
    "modality": 16,
    "body_part": 64,
    "procedure_code": 64,
    "subspecialty": 32,
    "site_code": 16,
    "station_ae": 16,
    "requested_study_uid": 64,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    """One order as the index has it, with its patient record and trust."""

    pk: int
    trust: str  # trust code
    trust_pk: int
    patient_pk: int
    patient_id: str
    issuer: str
    patient_name: str
    birth_date: str
    sex: str
    nhs_number: str
    person_pk: int | None
    placer_number: str
    filler_number: str
    accession_number: str
    requested_procedure_id: str
    status: OrderStatus
    priority: Priority
    modality: str
    body_part: str
    procedure_code: str
    procedure_text: str
    subspecialty: str
    site_code: str
    station_ae: str
    ordering_provider: str
    reason: str
    ordered_at: float | None
    scheduled_at: float | None
    study_uid: str | None  # the study matched to it, once arrived
    requested_study_uid: str  # what the worklist gives the modality
    source: str
    created_at: float
    updated_at: float

    @property
    def patient(self) -> str:
        """The record as rix names it: issuer/patient ID."""
        return f"{self.issuer}/{self.patient_id}"

    @classmethod
    def from_row(cls, row: Any) -> Order:
        """From ``select_orders()``: the columns by their own names, but for the key
        (``id``), the trust's code and the two enums."""
        named = {f.name for f in dataclasses.fields(cls)} - {"pk", "trust", "status", "priority"}
        return cls(
            pk=row.id,
            trust=row.code,
            status=OrderStatus(row.status or OrderStatus.SCHEDULED),
            priority=Priority(row.priority or Priority.OUTPATIENT),
            **{name: getattr(row, name) for name in named},
        )

    def as_dict(self) -> dict[str, Any]:
        """The API's view: the record as ``patient``, no row keys."""
        hidden = {"pk", "trust_pk", "patient_pk", "person_pk", "patient_id", "issuer"}
        shown = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in hidden
        }
        shown.update(status=self.status.value, priority=self.priority.value)
        return {"id": self.pk, "patient": self.patient, **shown}

    @property
    def touched(self) -> trail.Touched:
        """What an audit event about this order names."""
        return trail.Touched(
            study_uid=self.study_uid or "", patient=self.patient, nhs_number=self.nhs_number
        )


def select_orders() -> Select[Any]:
    """Orders with their patient record and trust code, as ``Order.from_row`` reads them."""
    return (
        select(
            orders,
            patients.c.patient_id,
            patients.c.issuer,
            patients.c.patient_name,
            patients.c.birth_date,
            patients.c.sex,
            patients.c.nhs_number,
            patients.c.person_pk,
            trusts.c.code,
        )
        .join(patients, patients.c.id == orders.c.patient_pk)
        .join(trusts, trusts.c.id == orders.c.trust_pk)
    )


def get(conn: Connection, pk: int) -> Order:
    row = conn.execute(select_orders().where(orders.c.id == pk)).first()
    if row is None:
        raise NotFound(f"no order {pk}")
    return Order.from_row(row)


def placed(conn: Connection, trust_pk: int, *, placer: str = "", filler: str = "") -> Order | None:
    """The trust's order with this placer (ORC-2) or, failing that, filler (ORC-3) number."""
    for column, value in ((orders.c.placer_number, placer), (orders.c.filler_number, filler)):
        if not value:
            continue
        row = conn.execute(
            select_orders()
            .where(orders.c.trust_pk == trust_pk, column == value)
            .order_by(orders.c.id.desc())
        ).first()
        if row is not None:
            return Order.from_row(row)
    return None


def by_accession(conn: Connection, trust_pk: int, accession: str) -> Order | None:
    row = conn.execute(
        select_orders().where(orders.c.trust_pk == trust_pk, orders.c.accession_number == accession)
    ).first()
    return None if row is None else Order.from_row(row)


def study_order_pk(study_uid: ColumnElement[str] | str) -> ScalarSelect[Any]:
    """SQL: the id of the study's order, the one rule every reader of it uses (the
    reporting worklist, the turnaround dashboard and its alerts, a report's ORU^R01).

    A study's order is one matched to it (``orders.study_uid``, by
    ``rix.workflow.order_matching``); when several are (the placer sent the order twice,
    or upgraded it with a second one), the most urgent of those not cancelled or
    discontinued, ties by the newest: an ended order was not carried out as ordered, so it
    must not set the study's clock or priority, and the most urgent live one is the one
    whose target the patient is owed. None when no live order is matched: the study is
    unordered (outpatient). ``study_uid`` is a value or a column to correlate with
    (``studies.c.study_uid``)."""
    mine = orders.alias("study_order")  # never correlated with an outer query's orders
    urgency = case(
        {p.value: n for n, p in enumerate(Priority)}, value=mine.c.priority, else_=len(Priority)
    )
    return (
        select(mine.c.id)
        .where(mine.c.study_uid == study_uid, mine.c.status.not_in(ENDED))
        .order_by(urgency, mine.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def order_of_study(conn: Connection, study_uid: str) -> Order | None:
    """The study's order (``study_order_pk``'s rule), None when it has none."""
    row = conn.execute(select_orders().where(orders.c.id == study_order_pk(study_uid))).first()
    return None if row is None else Order.from_row(row)


def is_matched(conn: Connection, study_uid: str) -> bool:
    """An order of any status claims the study: matching does not give it another."""
    found = conn.execute(select(orders.c.id).where(orders.c.study_uid == study_uid).limit(1))
    return found.first() is not None


def set_status(conn: Connection, order: Order, status: OrderStatus) -> None:
    """Move an order to ``status`` (MPPS, HL7 SC); a cancelled order stays cancelled."""
    if order.status is OrderStatus.CANCELLED and status is not OrderStatus.CANCELLED:
        raise Conflict(f"order {order.pk} is cancelled")
    conn.execute(
        update(orders)
        .where(orders.c.id == order.pk)
        .values(status=status.value, updated_at=time.time())
    )


def listing(
    conn: Connection,
    *,
    trust_pks: Collection[int] | None,
    status: str = "",
    modality: str = "",
    since: float | None = None,
    until: float | None = None,
    patient_pk: int | None = None,
    limit: int = 200,
) -> list[Order]:
    """Orders of these trusts (None: every trust), newest scheduled first; the dates
    bound when it is scheduled (when it was ordered, if it is not yet)."""
    when = func.coalesce(orders.c.scheduled_at, orders.c.ordered_at, orders.c.created_at)
    query = select_orders().order_by(when.desc(), orders.c.id.desc()).limit(limit)
    if trust_pks is not None:
        query = query.where(orders.c.trust_pk.in_(list(trust_pks)))
    if status:
        query = query.where(orders.c.status == OrderStatus(status).value)
    if modality:
        query = query.where(orders.c.modality == modality.upper())
    if since is not None:
        query = query.where(when >= since)
    if until is not None:
        query = query.where(when <= until)
    if patient_pk is not None:
        query = query.where(orders.c.patient_pk == patient_pk)
    return [Order.from_row(r) for r in conn.execute(query)]


def scheduled_for(
    conn: Connection, trust_pk: int, conditions: Sequence[ColumnElement[bool]], *, limit: int
) -> list[Order]:
    """The trust's scheduled orders meeting ``conditions`` (over ``orders`` and
    ``patients``), soonest first: the Modality Worklist (``rix.dicom.worklist``)."""
    query = (
        select_orders()
        .where(
            orders.c.trust_pk == trust_pk,
            orders.c.status == OrderStatus.SCHEDULED.value,
            *conditions,
        )
        .order_by(orders.c.scheduled_at, orders.c.id)
        .limit(limit)
    )
    return [Order.from_row(r) for r in conn.execute(query)]


def read(
    archive: Archive,
    principal: Principal,
    *,
    trust: str = "",
    status: str = "",
    modality: str = "",
    since: float | None = None,
    until: float | None = None,
    patient: str = "",
    limit: int = 200,
) -> list[Order]:
    """The orders ``principal`` may read that match (``listing``'s filters; ``trust`` a
    code, ``patient`` a record ``issuer/patient ID``): ``/api/orders`` and the portal's
    ``/orders``. One audited query."""
    trust_pks = visible_trusts(principal)
    with archive.engine.connect() as conn:
        if trust:
            wanted = get_trust(conn, trust).pk
            if trust_pks is not None and wanted not in trust_pks:
                raise AccessDenied(f"orders of {trust} are read by its own staff")
            trust_pks = [wanted]
        patient_pk = None
        if patient:
            issuer, _sep, patient_id = patient.partition("/")
            patient_pk = records.find(conn, issuer, patient_id) or -1
        found = listing(
            conn,
            trust_pks=trust_pks,
            status=status,
            modality=modality,
            since=since,
            until=until,
            patient_pk=patient_pk,
            limit=limit,
        )
    touched = trail.Touched(patient=patient) if patient else trail.Touched()
    detail = {"orders": len(found), "trust": trust, "status": status}
    trail.record(
        archive.writer.post, principal, audit.Kind.QUERY, audit.Outcome.SUCCESS, touched, detail
    )
    return found


def visible_trusts(principal: Principal) -> list[int] | None:
    """The trusts whose orders ``principal`` may list (None: all, rix itself)."""
    trust = radiology.require_orders_read(principal)
    return None if trust is None else [trust.pk]
