"""Modality Worklist SCP (PS3.4 K.6, Modality Worklist Information Model - FIND,
1.2.840.10008.5.1.4.31): the scheduled orders of the caller's trust, as C-FIND answers.

A registered AE sees its own trust's scheduled orders only (``access.radiology.worklist_trust``);
an unregistered AE sees none. Matching (PS3.4 C.2.2.2) on Patient ID and Patient's Name
(wildcards; names case-blind), Accession Number, Requested Procedure ID and, in the
Scheduled Procedure Step Sequence, Modality, Scheduled Station AE Title and the start
date (single date or range) and time. The answer names the trust's own record of the
patient (its hospital number and issuer: identity as that trust's PACS keeps it) and the
Study Instance UID made with the order, so the images carry it and match their order.
Only the keys asked are answered (PS3.4 K.6.1.2.2), plus Specific Character Set.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom.events import Event
from sqlalchemy import ColumnClause, ColumnElement

from rix import audit
from rix.access import radiology, trail
from rix.archive import Archive
from rix.config import Priority
from rix.dataset import parsing
from rix.dicom.find import FindReply
from rix.dicom.principal import principal_of
from rix.dicom.status import attempt
from rix.errors import InvalidQuery, QueryStatus
from rix.index.queries import text_matches
from rix.index.records import name_key
from rix.index.schema import patients
from rix.index.workflow_tables import orders as order_rows
from rix.workflow import orders
from rix.workflow.orders import Order

MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
MAX_MATCHES = 1000
PRIORITY = {  # Requested Procedure Priority (0040,1003), PS3.3 C.4.11
    Priority.EMERGENCY: "STAT",
    Priority.INPATIENT: "HIGH",
    Priority.OUTPATIENT: "ROUTINE",
}


def _day_bounds(value: str, moment: str) -> tuple[float | None, float | None]:
    """A DA value or range, with a TM value or range for a single date, as local times."""
    low, sep, high = value.partition("-")
    if not sep:
        high = low
    t_low, t_sep, t_high = moment.partition("-")
    if not t_sep:
        t_high = t_low
    start = _instant(low, t_low if low == high else "", upper=False)
    end = _instant(high, t_high if low == high else "", upper=True)
    return start, end


def _instant(day: str, moment: str, *, upper: bool) -> float | None:
    if not day:
        return None
    digits = moment.replace(":", "").split(".")[0]
    filler = "235959" if upper else "000000"
    text = day.replace(".", "") + (digits + filler[len(digits) :])[:6]
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%S").timestamp() + (0.999 if upper else 0)
    except ValueError:
        raise InvalidQuery(f"{day!r} / {moment!r} is not a DA/TM value or range") from None


def _matching(ds: Dataset, *keys: tuple[str, ColumnClause[Any]]) -> list[ColumnElement[bool]]:
    """Single value or wildcard matching on each key of ``ds`` given a value other than
    the universal ``*``."""
    values = ((parsing.text(ds, keyword), column) for keyword, column in keys)
    return [text_matches(column, value) for value, column in values if value and value != "*"]


def conditions(identifier: Dataset) -> list[ColumnElement[bool]]:
    """The SQL for the keys of a worklist identifier (universal keys filter nothing)."""
    out = _matching(
        identifier,
        ("PatientID", patients.c.patient_id),
        ("AccessionNumber", order_rows.c.accession_number),
        ("RequestedProcedureID", order_rows.c.requested_procedure_id),
    )
    name = parsing.text(identifier, "PatientName")
    if name and name != "*":
        out.append(text_matches(patients.c.patient_name_ci, name_key(name)))
    items = identifier.get("ScheduledProcedureStepSequence", None) or []
    step = items[0] if len(items) else Dataset()
    out += _matching(
        step,
        ("Modality", order_rows.c.modality),
        ("ScheduledStationAETitle", order_rows.c.station_ae),
    )
    day = parsing.text(step, "ScheduledProcedureStepStartDate")
    if day:
        start, end = _day_bounds(day, parsing.text(step, "ScheduledProcedureStepStartTime"))
        if start is not None:
            out.append(order_rows.c.scheduled_at >= start)
        if end is not None:
            out.append(order_rows.c.scheduled_at <= end)
    return out


def scheduled(archive: Archive, trust_pk: int, identifier: Dataset) -> list[Order]:
    """The trust's scheduled orders matching the identifier, soonest first."""
    where = conditions(identifier)
    with archive.engine.connect() as conn:
        return orders.scheduled_for(conn, trust_pk, where, limit=MAX_MATCHES)


def _local(moment: float | None, form: str) -> str:
    return "" if moment is None else time.strftime(form, time.localtime(moment))


def entry(order: Order) -> Dataset:
    """Everything a worklist item says about an order (PS3.4 K.6.1.2.2)."""
    ds = Dataset()
    ds.PatientName = order.patient_name
    ds.PatientID = order.patient_id
    ds.IssuerOfPatientID = order.issuer
    ds.PatientBirthDate = order.birth_date
    ds.PatientSex = order.sex
    ds.AccessionNumber = order.accession_number
    ds.ReferringPhysicianName = order.ordering_provider
    ds.StudyInstanceUID = order.requested_study_uid
    ds.RequestedProcedureID = order.requested_procedure_id
    ds.RequestedProcedureDescription = order.procedure_text[:64]
    ds.RequestedProcedurePriority = PRIORITY[order.priority]
    ds.PlacerOrderNumberImagingServiceRequest = order.placer_number
    ds.FillerOrderNumberImagingServiceRequest = order.filler_number
    ds.ReasonForTheRequestedProcedure = order.reason[:64]
    if order.procedure_code:
        code = Dataset()
        code.CodeValue = order.procedure_code[:16]
        code.CodingSchemeDesignator = "L"  # the trust's local codes
        code.CodeMeaning = order.procedure_text[:64]
        ds.RequestedProcedureCodeSequence = Sequence([code])
    step = Dataset()
    step.Modality = order.modality
    step.ScheduledStationAETitle = order.station_ae
    step.ScheduledProcedureStepStartDate = _local(order.scheduled_at, "%Y%m%d")
    step.ScheduledProcedureStepStartTime = _local(order.scheduled_at, "%H%M%S")
    step.ScheduledPerformingPhysicianName = ""
    step.ScheduledProcedureStepDescription = order.procedure_text[:64]
    step.ScheduledProcedureStepID = str(order.pk)
    step.ScheduledProcedureStepStatus = "SCHEDULED"
    ds.ScheduledProcedureStepSequence = Sequence([step])
    return ds


def answer(full: Dataset, asked: Dataset) -> Dataset:
    """The keys of ``asked`` with ``full``'s values (empty when it has none); in a
    sequence, the keys of the asked item (all of them for an empty item)."""
    out = Dataset()
    for element in asked:
        if element.tag == 0x00080005:
            continue
        found = full.get(element.tag)
        if element.VR == "SQ":
            wanted = element.value[0] if element.value else Dataset()
            items = found.value if found is not None else []
            out.add(
                DataElement(
                    element.tag,
                    "SQ",
                    Sequence([answer(i, wanted) if len(wanted) else i for i in items]),
                )
            )
        elif found is not None:
            out.add(found)
        else:
            out.add(DataElement(element.tag, element.VR, None))
    if any(not str(v.value).isascii() for v in out.iterall() if v.VR in ("PN", "LO", "SH")):
        out.SpecificCharacterSet = "ISO_IR 192"
    return out


def handle_find(event: Event, archive: Archive) -> Iterator[FindReply]:
    """C-FIND on the worklist model; an unregistered AE's answer is empty."""
    principal = principal_of(event)
    # an identifier pydicom cannot read, or the database away, is answered too
    with attempt("worklist c-find", QueryStatus.UNABLE_TO_PROCESS) as attempted:
        identifier = event.identifier
        trust = radiology.worklist_trust(principal)
        found = [] if trust is None else scheduled(archive, trust.pk, identifier)
    if attempted.failure is not None:
        yield attempted.failure, None
        return
    _audit(archive, principal, identifier, found)
    for order in found:
        if event.is_cancelled:
            yield QueryStatus.CANCEL, None
            return
        yield QueryStatus.PENDING, answer(entry(order), identifier)
    yield QueryStatus.SUCCESS, None


def _audit(archive: Archive, principal: Any, identifier: Dataset, found: list[Order]) -> None:
    keys = {
        e.keyword: str(e.value)
        for e in identifier.iterall()
        if e.VR != "SQ" and e.value not in (None, "", "*")
    }
    touched = None
    if len({o.patient for o in found}) == 1:
        touched = trail.Touched(patient=found[0].patient, nhs_number=found[0].nhs_number)
    detail = {"model": "modality-worklist", "keys": keys, "matches": len(found)}
    trail.record(
        archive.writer.post, principal, audit.Kind.QUERY, audit.Outcome.SUCCESS, touched, detail
    )
