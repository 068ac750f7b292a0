"""``/api/orders`` and ``/api/patients``: the REST twin of the HL7 order and ADT feeds
(``rix.hl7.orders``, ``rix.hl7.patients``), for systems without HL7 and for people
reconciling studies with orders. Rules live in ``rix.workflow.orders``,
``rix.region.patients`` and ``rix.access``; every call is audited, a change in the
transaction that makes it.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, StringConstraints, create_model
from sqlalchemy import Connection

from rix import audit
from rix.access import Principal, checks, radiology, trail
from rix.archive import Archive
from rix.config import Priority
from rix.errors import Conflict, NotFound
from rix.index.database import begin_write
from rix.region import mpi
from rix.region import patients as records
from rix.region.trusts import get_trust
from rix.web.auth import principal_of
from rix.web.context import archive_of
from rix.web.fields import PRINTABLE, Answer, Code, NhsNumber, PatientRef, RowId, Text
from rix.workflow import order_entry, order_matching, orders
from rix.workflow.orders import Order, OrderDetails, OrderStatus

router = APIRouter(prefix="/api", tags=["orders"])

Number = Annotated[str, StringConstraints(pattern=PRINTABLE, max_length=64)]
Date = Annotated[str, StringConstraints(pattern=r"^([0-9]{8})?$")]
Sex = Annotated[str, StringConstraints(pattern="^(M|F|O)?$")]
PriorityName = Annotated[str, StringConstraints(pattern=f"^({'|'.join(Priority)})$")]
StatusName = Annotated[str, StringConstraints(pattern=f"^({'|'.join(OrderStatus)})?$")]
Uid = Annotated[str, StringConstraints(pattern=r"^[0-9.]{1,64}$")]


class PatientIn(BaseModel):
    """The trust's record: made when the trust has none yet."""

    patient_id: Annotated[str, StringConstraints(pattern=PRINTABLE, min_length=1, max_length=64)]
    issuer: Number = ""  # the trust's issuer when empty
    name: Text = ""  # DICOM PN: family^given
    birth_date: Date = ""
    sex: Sex = ""
    nhs_number: NhsNumber = ""


# what an API caller says about an order: the fields of ``rix.workflow.orders.OrderDetails``
# but the two rix fills in itself (when it was ordered: now; the Study Instance UID: made)
TAKEN = tuple(n for n in orders.CHANGEABLE if n not in ("ordered_at", "requested_study_uid"))
DEFAULTS = {f.name: f.default for f in dataclasses.fields(OrderDetails)}


def _type(name: str) -> Any:
    """A field as the API takes it: printable text within the column's length (free text
    where the column has none), the priority by name, times as ISO 8601 or epoch seconds."""
    if name == "priority":
        return PriorityName
    if name == "scheduled_at":
        return datetime | None
    limit = orders.LIMITS.get(name)
    return (
        Text
        if limit is None
        else Annotated[str, StringConstraints(pattern=PRINTABLE, max_length=limit)]
    )


def _default(name: str) -> Any:
    value = DEFAULTS[name]
    return str(value) if isinstance(value, StrEnum) else value


_GIVEN: dict[str, Any] = {n: (_type(n), _default(n)) for n in TAKEN}
_CHANGED: dict[str, Any] = {n: (_type(n) | None, None) for n in TAKEN}
OrderFields = create_model("OrderFields", **_GIVEN)
_OrderChange = create_model("OrderChange", **_CHANGED)


class OrderIn(OrderFields):  # type: ignore[misc,valid-type]  # made from OrderDetails
    trust: Code
    patient: PatientIn


class OrderChange(_OrderChange):  # type: ignore[misc,valid-type]  # made from OrderDetails
    """Only the fields sent change."""


class MatchIn(BaseModel):
    study_uid: Uid


class PatientUpdateIn(BaseModel):
    patient: PatientRef  # issuer/patient ID
    name: Text = ""
    birth_date: Date = ""
    sex: Sex = ""
    nhs_number: NhsNumber = ""


class MergeIn(BaseModel):
    prior: PatientRef  # merged into
    surviving: PatientRef


# the answer: ``Order.as_dict``, the fields of ``Order`` but its row keys, with the record
# as ``patient`` (issuer/patient ID); times are Unix seconds
_ROW_KEYS = {"pk", "trust_pk", "patient_pk", "person_pk", "patient_id", "issuer"}
_HINTS = typing.get_type_hints(Order)
_SHOWN: dict[str, Any] = {
    f.name: (_HINTS[f.name], ...) for f in dataclasses.fields(Order) if f.name not in _ROW_KEYS
}
_OrderOut = create_model("OrderShown", __base__=Answer, id=(int, ...), patient=(str, ...), **_SHOWN)


class OrderOut(_OrderOut):  # type: ignore[misc,valid-type]  # made from Order
    """An order: ``patient`` is the record as issuer/patient ID; times are Unix seconds."""


class UnmatchedOut(Answer):
    """A study no order claims (``received_at``: Unix seconds)."""

    study_uid: str
    accession_number: str
    study_date: str
    description: str
    modalities: list[str]
    patient: str  # issuer/patient ID
    patient_name: str
    trust: str
    received_at: float


class RecordOut(Answer):
    """A patient record (``link``: its state in the master patient index)."""

    patient: str  # issuer/patient ID
    name: str
    birth_date: str
    sex: str
    nhs_number: str
    link: str


class MergedOut(RecordOut):
    studies_moved: int


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    try:
        return value.timestamp()
    except (OverflowError, ValueError, OSError):
        raise Conflict(f"{value.isoformat()} is out of range") from None


def _details(body: BaseModel) -> OrderDetails:
    fields = body.model_dump(include=set(TAKEN))
    priority, scheduled_at = Priority(fields.pop("priority")), fields.pop("scheduled_at")
    return OrderDetails(**fields, priority=priority, scheduled_at=_epoch(scheduled_at))


def _visible(conn: Connection, principal: Principal, order_pk: int) -> Order:
    """The order, if the principal may see its trust's orders (else: no such order)."""
    order = orders.get(conn, order_pk)
    trusts = orders.visible_trusts(principal)
    if trusts is not None and order.trust_pk not in trusts:
        raise NotFound(f"no order {order_pk}")
    return order


def _changed(
    archive: Archive, principal: Principal, action: str, change: Callable[[Connection], Order]
) -> dict[str, Any]:
    with begin_write(archive.engine) as conn:
        order = change(conn)
        trail.record_in(
            conn,
            principal,
            audit.Kind.ADMIN,
            audit.Outcome.SUCCESS,
            order.touched,
            {"action": action, "order": order.pk, "via": "api"},
        )
    return order.as_dict()


def _read(archive: Archive, principal: Principal, touched: trail.Touched, **detail: Any) -> None:
    trail.record(
        archive.writer.post, principal, audit.Kind.QUERY, audit.Outcome.SUCCESS, touched, detail
    )


@router.post(
    "/orders",
    status_code=201,
    summary="Place an order (the trust's clinical staff)",
    response_model=OrderOut,
)
def create_order(request: Request, body: OrderIn) -> dict[str, Any]:
    """Makes the patient record if the trust has none, an accession number if none is
    given, the order relationship the access policy reads and the prefetch of priors."""
    archive, principal = archive_of(request), principal_of(request)
    with archive.engine.connect() as conn:
        trust = get_trust(conn, body.trust)
    radiology.require_order(principal, trust.code)
    patient = records.Details(
        patient_id=body.patient.patient_id,
        issuer=body.patient.issuer or trust.issuer,
        name=body.patient.name,
        birth_date=body.patient.birth_date,
        sex=body.patient.sex,
        nhs_number=body.patient.nhs_number,
    )

    def change(conn: Connection) -> Order:
        order, _created = order_entry.create(
            conn, principal, trust=trust, patient=patient, details=_details(body), source="api"
        )
        return order

    return _changed(archive, principal, "order create", change)


@router.get("/orders", summary="Orders of your trust, newest first", response_model=list[OrderOut])
def list_orders(
    request: Request,
    trust: Annotated[str, Query(pattern=PRINTABLE, max_length=16)] = "",
    status: Annotated[StatusName, Query()] = "",
    modality: Annotated[str, Query(pattern=PRINTABLE, max_length=16)] = "",
    since: Annotated[datetime | None, Query(description="scheduled from (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="scheduled until (ISO 8601)")] = None,
    patient: Annotated[str, Query(pattern=PRINTABLE, max_length=130)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    found = orders.read(
        archive_of(request),
        principal_of(request),
        trust=trust,
        status=status,
        modality=modality,
        since=_epoch(since),
        until=_epoch(until),
        patient=patient,
        limit=limit,
    )
    return [o.as_dict() for o in found]


@router.get(
    "/orders/unmatched",
    summary="Studies no order claims, for reconciliation",
    response_model=list[UnmatchedOut],
)
def unmatched(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    archive, principal = archive_of(request), principal_of(request)
    trusts = orders.visible_trusts(principal)
    with archive.engine.connect() as conn:
        found = order_matching.unmatched(conn, trust_pks=trusts, limit=limit)
    _read(archive, principal, trail.Touched(), unmatched=len(found))
    return found


@router.get("/orders/{order_id}", summary="One order", response_model=OrderOut)
def get_order(request: Request, order_id: RowId) -> dict[str, Any]:
    archive, principal = archive_of(request), principal_of(request)
    with archive.engine.connect() as conn:
        order = _visible(conn, principal, order_id)
    _read(archive, principal, order.touched, order=order.pk)
    return order.as_dict()


@router.patch("/orders/{order_id}", summary="Change an open order", response_model=OrderOut)
def change_order(request: Request, order_id: RowId, body: OrderChange) -> dict[str, Any]:
    archive, principal = archive_of(request), principal_of(request)
    values = body.model_dump(exclude_unset=True, exclude_none=True)
    if "scheduled_at" in values:
        values["scheduled_at"] = _epoch(body.scheduled_at)
    if not values:
        raise Conflict("send at least one field to change")
    return _changed(
        archive,
        principal,
        "order change",
        lambda conn: order_entry.change(
            conn, principal, _visible(conn, principal, order_id), values
        ),
    )


def _ended(request: Request, order_id: int, *, discontinue: bool) -> dict[str, Any]:
    archive, principal = archive_of(request), principal_of(request)
    return _changed(
        archive,
        principal,
        "order discontinue" if discontinue else "order cancel",
        lambda conn: order_entry.cancel(
            conn, principal, _visible(conn, principal, order_id), discontinue=discontinue
        ),
    )


@router.post(
    "/orders/{order_id}/cancel",
    summary="Cancel an order not yet started",
    response_model=OrderOut,
)
def cancel_order(request: Request, order_id: RowId) -> dict[str, Any]:
    return _ended(request, order_id, discontinue=False)


@router.post(
    "/orders/{order_id}/discontinue",
    summary="Discontinue an order once started",
    response_model=OrderOut,
)
def discontinue_order(request: Request, order_id: RowId) -> dict[str, Any]:
    return _ended(request, order_id, discontinue=True)


@router.post(
    "/orders/{order_id}/match",
    summary="Match an unmatched study to the order",
    response_model=OrderOut,
)
def match_order(request: Request, order_id: RowId, body: MatchIn) -> dict[str, Any]:
    archive, principal = archive_of(request), principal_of(request)
    return _changed(
        archive,
        principal,
        "order match",
        lambda conn: order_matching.match_by_hand(
            conn, principal, _visible(conn, principal, order_id), body.study_uid
        ),
    )


def _record_changed(
    archive: Archive,
    principal: Principal,
    ref: str,
    action: str,
    change: Callable[[Connection, mpi.Record], mpi.Record],
) -> mpi.Record:
    with begin_write(archive.engine) as conn:
        rec = mpi.find_record(conn, ref)
        checks.require_patient_change(principal, rec.trust or "-")
        result = change(conn, rec)
        trail.record_in(
            conn,
            principal,
            audit.Kind.ADMIN,
            audit.Outcome.SUCCESS,
            trail.Touched(patient=result.ref, nhs_number=result.nhs_number),
            {"action": action, "via": "api"},
        )
    return result


def _record_dict(rec: mpi.Record) -> dict[str, Any]:
    return {
        "patient": rec.ref,
        "name": rec.name,
        "birth_date": rec.birth_date,
        "sex": rec.sex,
        "nhs_number": rec.nhs_number,
        "link": rec.link_state,
    }


@router.post(
    "/patients/update",
    summary="Correct a patient record (as HL7 ADT A08)",
    response_model=RecordOut,
)
def update_patient(request: Request, body: PatientUpdateIn) -> dict[str, Any]:
    archive, principal = archive_of(request), principal_of(request)

    def change(conn: Connection, rec: mpi.Record) -> mpi.Record:
        details = records.Details(
            patient_id=rec.patient_id,
            issuer=rec.issuer,
            name=body.name,
            birth_date=body.birth_date,
            sex=body.sex,
            nhs_number=body.nhs_number,
        )
        return records.update_details(conn, rec.pk, details)

    return _record_dict(_record_changed(archive, principal, body.patient, "patient update", change))


@router.post(
    "/patients/merge",
    summary="Merge a record into another (as HL7 ADT A40)",
    response_model=MergedOut,
)
def merge_patients(request: Request, body: MergeIn) -> dict[str, Any]:
    """The prior record's studies and orders move to the surviving record of the same
    trust; queries answer the surviving ID, and copies sent out carry it."""
    archive, principal = archive_of(request), principal_of(request)
    moved = 0

    def change(conn: Connection, surviving: mpi.Record) -> mpi.Record:
        nonlocal moved
        prior = mpi.find_record(conn, body.prior)
        moved = records.merge(
            conn,
            prior_pk=prior.pk,
            surviving_pk=surviving.pk,
            by=principal.name,
            reference=f"api:{prior.ref}",
        )
        return mpi.record(conn, surviving.pk)

    rec = _record_changed(
        archive, principal, body.surviving, f"patient merge of {body.prior}", change
    )
    return {**_record_dict(rec), "studies_moved": moved}
