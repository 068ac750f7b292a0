"""Imaging orders at a trust: created, changed, cancelled and matched to the study they
produce.

An order comes from the trust's own system (HL7 ORM^O01/OMI^O23, ``rix.hl7.orders``) or
the REST API, names one of the trust's own patient records (made now when the trust has
none, and linked by NHS number through the MPI), and is what the Modality Worklist
answers (``rix.dicom.worklist``) and MPPS updates (``rix.dicom.mpps``). Three things
follow from creating one, in the same transaction:

- a legitimate relationship (kind ``order``) at the trust for the person, which the
  access policy reads: the trust's staff may now see the patient's images at partner
  trusts (DESIGN.md, "Access");
- the prefetch of the patient's priors (``rix.workflow.priors``);
- an accession number (when the order has none: unique per trust) and a Study Instance
  UID for the modality to use.

A study is matched to its order when it is stable (``match_study``, from the study's
stability job): same trust, same accession number (or the Study Instance UID the
worklist gave), same person. What matches nothing is listed for reconciliation
(``unmatched``) and matched by hand (``match_by_hand``).

Functions take the caller's connection and change nothing outside it: the front ends
commit the change with its audit event.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydicom.uid import generate_uid
from sqlalchemy import ColumnElement, Connection, Select, exists, func, or_, select, update

from rix import access
from rix.access import Principal
from rix.errors import Conflict, NotFound
from rix.index.schema import orders, patients, performed_steps, studies, trusts
from rix.region import mpi
from rix.region import patients as records
from rix.region.trusts import Trust, get_trust
from rix.workflow import priors

ACCESSION_PREFIX = "RIX"


class Status(StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    DISCONTINUED = "discontinued"


OPEN = frozenset({Status.SCHEDULED, Status.IN_PROGRESS})


class Priority(StrEnum):
    """What turnaround targets key on (the reporting worklist, the dashboard)."""

    EMERGENCY = "emergency"
    INPATIENT = "inpatient"
    OUTPATIENT = "outpatient"


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
    """What the placer says about an order (a new one, or a change: empty is unchanged)."""

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


CHANGEABLE = (
    "placer_number",
    "filler_number",
    "accession_number",
    "requested_procedure_id",
    "priority",
    "modality",
    "body_part",
    "procedure_code",
    "procedure_text",
    "subspecialty",
    "site_code",
    "station_ae",
    "ordering_provider",
    "reason",
    "ordered_at",
    "scheduled_at",
    "requested_study_uid",
)
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
    status: Status
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
        return cls(
            pk=row.id,
            trust=row.code,
            trust_pk=row.trust_pk,
            patient_pk=row.patient_pk,
            patient_id=row.patient_id,
            issuer=row.issuer,
            patient_name=row.patient_name,
            birth_date=row.birth_date,
            sex=row.sex,
            nhs_number=row.nhs_number,
            person_pk=row.person_pk,
            placer_number=row.placer_number,
            filler_number=row.filler_number,
            accession_number=row.accession_number,
            requested_procedure_id=row.requested_procedure_id,
            status=Status(row.status or Status.SCHEDULED),
            priority=Priority(row.priority or Priority.OUTPATIENT),
            modality=row.modality,
            body_part=row.body_part,
            procedure_code=row.procedure_code,
            procedure_text=row.procedure_text,
            subspecialty=row.subspecialty,
            site_code=row.site_code,
            station_ae=row.station_ae,
            ordering_provider=row.ordering_provider,
            reason=row.reason,
            ordered_at=row.ordered_at,
            scheduled_at=row.scheduled_at,
            study_uid=row.study_uid,
            requested_study_uid=row.requested_study_uid,
            source=row.source,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "trust": self.trust,
            "patient": self.patient,
            "patient_name": self.patient_name,
            "birth_date": self.birth_date,
            "sex": self.sex,
            "nhs_number": self.nhs_number,
            "placer_number": self.placer_number,
            "filler_number": self.filler_number,
            "accession_number": self.accession_number,
            "requested_procedure_id": self.requested_procedure_id,
            "status": self.status.value,
            "priority": self.priority.value,
            "modality": self.modality,
            "body_part": self.body_part,
            "procedure_code": self.procedure_code,
            "procedure_text": self.procedure_text,
            "subspecialty": self.subspecialty,
            "site_code": self.site_code,
            "station_ae": self.station_ae,
            "ordering_provider": self.ordering_provider,
            "reason": self.reason,
            "ordered_at": self.ordered_at,
            "scheduled_at": self.scheduled_at,
            "study_uid": self.study_uid,
            "requested_study_uid": self.requested_study_uid,
            "source": self.source,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @property
    def touched(self) -> access.Touched:
        """What an audit event about this order names."""
        return access.Touched(
            study_uid=self.study_uid or "", patient=self.patient, nhs_number=self.nhs_number
        )


def _select() -> Select[Any]:
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
    row = conn.execute(_select().where(orders.c.id == pk)).first()
    if row is None:
        raise NotFound(f"no order {pk}")
    return Order.from_row(row)


def placed(conn: Connection, trust_pk: int, *, placer: str = "", filler: str = "") -> Order | None:
    """The trust's order with this placer (ORC-2) or, failing that, filler (ORC-3) number."""
    for column, value in ((orders.c.placer_number, placer), (orders.c.filler_number, filler)):
        if not value:
            continue
        row = conn.execute(
            _select()
            .where(orders.c.trust_pk == trust_pk, column == value)
            .order_by(orders.c.id.desc())
        ).first()
        if row is not None:
            return Order.from_row(row)
    return None


def by_accession(conn: Connection, trust_pk: int, accession: str) -> Order | None:
    row = conn.execute(
        _select().where(orders.c.trust_pk == trust_pk, orders.c.accession_number == accession)
    ).first()
    return None if row is None else Order.from_row(row)


def order_of_study(conn: Connection, study_uid: str) -> Order | None:
    """The order a study was matched to (None: none yet). What the reporting worklist reads
    for priority, modality, body part and sub-specialty."""
    row = conn.execute(
        _select().where(orders.c.study_uid == study_uid).order_by(orders.c.id.desc())
    ).first()
    return None if row is None else Order.from_row(row)


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
    access.require_order(principal, trust.code)
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
            status=Status.SCHEDULED.value,
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
    access.record_relationship(
        conn, principal, trust=trust, person_pk=person, kind="order", reference=accession
    )
    order = get(conn, pk)
    _match_arrived(conn, order)
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
    access.require_order(principal, order.trust)
    if order.status not in OPEN:
        raise Conflict(f"order {order.pk} is {order.status.value}: it can no longer change")
    checked = _checked(values)
    accession = checked.get("accession_number")
    if accession and accession != order.accession_number:
        if by_accession(conn, order.trust_pk, accession) is not None:
            raise Conflict(f"accession number {accession} is another order's")
        person = mpi.person_of(conn, order.patient_pk)
        access.record_relationship(
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
    access.require_order(principal, order.trust)
    wanted = Status.DISCONTINUED if discontinue else Status.CANCELLED
    if order.status is wanted:
        return order
    allowed = OPEN if discontinue else frozenset({Status.SCHEDULED})
    if order.status not in allowed:
        hint = " (discontinue it instead)" if order.status is Status.IN_PROGRESS else ""
        raise Conflict(f"order {order.pk} is {order.status.value}{hint}")
    set_status(conn, order, wanted)
    if wanted is Status.CANCELLED and order.person_pk is not None:
        access.end_order_relationship(
            conn,
            trust_pk=order.trust_pk,
            person_pk=order.person_pk,
            reference=order.accession_number,
        )
    return get(conn, order.pk)


def set_status(conn: Connection, order: Order, status: Status) -> None:
    """Move an order to ``status`` (MPPS, HL7 SC); a cancelled order stays cancelled."""
    if order.status is Status.CANCELLED and status is not Status.CANCELLED:
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
    query = _select().order_by(when.desc(), orders.c.id.desc()).limit(limit)
    if trust_pks is not None:
        query = query.where(orders.c.trust_pk.in_(list(trust_pks)))
    if status:
        query = query.where(orders.c.status == Status(status).value)
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
        _select()
        .where(
            orders.c.trust_pk == trust_pk,
            orders.c.status == Status.SCHEDULED.value,
            *conditions,
        )
        .order_by(orders.c.scheduled_at, orders.c.id)
        .limit(limit)
    )
    return [Order.from_row(r) for r in conn.execute(query)]


# --- studies and their orders ---


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
    known = order_of_study(conn, study_uid)
    if known is not None:
        return known
    keys = [orders.c.requested_study_uid == study_uid]
    if study.accession_number:
        keys.append(orders.c.accession_number == study.accession_number)
    candidates = conn.execute(
        _select()
        .where(
            orders.c.trust_pk == study.trust_pk,
            orders.c.study_uid.is_(None),
            orders.c.status != Status.CANCELLED.value,
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


def _match_arrived(conn: Connection, order: Order) -> None:
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
    status = Status.COMPLETED
    if step == "IN PROGRESS":
        status = Status.IN_PROGRESS
    elif step == "DISCONTINUED" or order.status is Status.DISCONTINUED:
        status = Status.DISCONTINUED
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
    access.require_order(principal, order.trust)
    study = _study(conn, study_uid)
    if study is None or study.trust_pk != order.trust_pk:
        raise NotFound(f"no study {study_uid} of {order.trust}")
    if order.study_uid == study_uid:
        return order
    if order.study_uid:
        raise Conflict(f"order {order.pk} is matched to another study")
    if order.status is Status.CANCELLED:
        raise Conflict(f"order {order.pk} is cancelled")
    if order_of_study(conn, study_uid) is not None:
        raise Conflict("the study is matched to another order")
    if not _same_patient(order, study):
        raise Conflict("the study is another patient's: merge or link the records first")
    _attach(conn, order, study_uid)
    return get(conn, order.pk)


def visible_trusts(principal: Principal) -> list[int] | None:
    """The trusts whose orders ``principal`` may list (None: all, rix itself)."""
    trust = access.require_orders_read(principal)
    return None if trust is None else [trust.pk]
