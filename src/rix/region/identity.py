"""Patient identity on the way out: images sent to a trust carry that trust's numbers.

A PACS files images by its own hospital number. When rix sends a study to an AE that
belongs to a trust (C-MOVE destination, C-GET requester) and the patient is linked to a
record at that trust, PatientID and Issuer of Patient ID become the trust's; otherwise the
source's ID and issuer are kept, stated explicitly, and Other Patient IDs Sequence lists
the NHS number and the person's other records, so the receiving PACS can reconcile.
The stored bytes never change (DESIGN.md): this is applied to the copy being sent.

Outside media reconciled to a local record (``rix.reconcile``) are stored naming the
outside patient; every copy that leaves rix names the local record instead (``outgoing``),
and then, for a destination of another trust, that record's identity there, as above.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from sqlalchemy import ColumnElement, Connection, select

from rix.dataset import nhs
from rix.index import queries
from rix.index.schema import (
    instances,
    patients,
    reconciled_instances,
    reconciliations,
    series,
    studies,
)
from rix.region.trusts import Trust

NHS_ISSUER = "NHS"


@dataclass(frozen=True, slots=True, kw_only=True)
class Coercion:
    patient_id: str
    issuer: str
    other_ids: tuple[tuple[str, str], ...]  # (ID, issuer), the source's first
    # (keyword, value) of a reconciled record: the bytes name another patient altogether
    demographics: tuple[tuple[str, str], ...] = ()

    def apply(self, ds: Dataset) -> None:
        if ds.get("IssuerOfPatientID", "") != self.issuer:
            ds.pop("IssuerOfPatientIDQualifiersSequence", None)  # qualified the old issuer
        ds.PatientID = self.patient_id
        if self.issuer:
            ds.IssuerOfPatientID = self.issuer
        elif self.demographics:  # an outside issuer would scope the local ID wrongly
            ds.pop("IssuerOfPatientID", None)
        for keyword, value in self.demographics:
            setattr(ds, keyword, value)
        items = []
        for patient_id, issuer in self.other_ids:
            item = Dataset()
            item.PatientID = patient_id
            item.IssuerOfPatientID = issuer
            item.TypeOfPatientID = "TEXT"
            items.append(item)
        if items:
            ds.OtherPatientIDsSequence = Sequence(items)


def coercions(
    conn: Connection, patient_pks: Iterable[int], destination: Trust | None
) -> dict[int, Coercion]:
    """For each patient record being sent to ``destination``, what to send instead;
    records of the destination trust itself, or a destination of no trust, need none."""
    if destination is None:
        return {}
    refs = queries.patients_by_pk(conn, patient_pks)
    out: dict[int, Coercion] = {}
    for pk, ref in refs.items():
        if ref.issuer == destination.issuer:
            continue
        linked = _linked(conn, ref)
        local = [r for r in linked if r.issuer == destination.issuer]
        others = [(ref.patient_id, ref.issuer)]
        if ref.nhs_number and nhs.is_valid(ref.nhs_number):
            others.append((ref.nhs_number, NHS_ISSUER))
        others.extend((r.patient_id, r.issuer) for r in linked if r.issuer != destination.issuer)
        if local:
            out[pk] = Coercion(
                patient_id=local[0].patient_id,
                issuer=destination.issuer,
                other_ids=tuple(dict.fromkeys(others)),
            )
        elif ref.issuer or len(others) > 1:  # nothing to state: send as stored
            out[pk] = Coercion(
                patient_id=ref.patient_id,
                issuer=ref.issuer,
                other_ids=tuple(dict.fromkeys(others[1:])),
            )
    return out


def _linked(conn: Connection, ref: queries.PatientRef) -> list[queries.PatientRef]:
    """The person's other records, in the order they were first seen."""
    if ref.person_pk is None:
        return []
    return [r for r in queries.records_of_person(conn, ref.person_pk) if r.pk != ref.pk]


def reconciled(conn: Connection, instance_pks: Iterable[int]) -> dict[int, Coercion]:
    """For stored instances of outside media (``rix.reconcile``): the local record they
    are indexed under, with the outside ID kept in Other Patient IDs Sequence. The stored
    bytes still name the outside patient; WADO-RS metadata shows what the index says."""
    pks = list(instance_pks)
    if not pks:
        return {}
    rows = _reconciled_rows(conn, reconciled_instances.c.instance_pk.in_(pks))
    return {int(row.instance_pk): _correction(row) for row in rows}


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """The identity each instance of a batch leaving rix carries (a C-MOVE or C-GET, a
    delivery, a WADO-RS retrieve, an export): per patient record for the destination trust
    (``coercions``), or per instance for reconciled outside media. An instance in neither
    goes out as stored, bytes unchanged."""

    by_patient: Mapping[int, Coercion] = field(default_factory=dict)
    by_instance: Mapping[str, Coercion] = field(default_factory=dict)  # by SOP Instance UID

    def of(self, item: queries.StoredInstance) -> Coercion | None:
        found = self.by_instance.get(item.sop_uid)
        return found if found is not None else self.by_patient.get(item.patient_pk)


AS_STORED = Outgoing()


def outgoing(
    conn: Connection, stored: Collection[queries.StoredInstance], destination: Trust | None
) -> Outgoing:
    """The identities of ``stored`` sent to ``destination`` (a trust's AE, or None: a
    destination of no trust, a user, a file). A reconciled instance names its local record,
    the outside ID among the Other Patient IDs; for another trust that record's identity
    there is used as ``coercions`` gives it, the outside ID still listed. One query finds
    the reconciled instances of the whole batch (none: nothing else happens)."""
    patient_pks = {s.patient_pk for s in stored}
    by_patient = coercions(conn, patient_pks, destination)
    if not stored:
        return Outgoing(by_patient=by_patient)
    rows = _reconciled_rows(
        conn,
        reconciliations.c.patient_pk.in_(patient_pks),
        studies.c.study_uid.in_({s.study_uid for s in stored}),
    )
    wanted = {s.sop_uid for s in stored}
    by_instance = {
        row.sop_uid: _combined(_correction(row), by_patient.get(int(row.record_pk)))
        for row in rows
        if row.sop_uid in wanted
    }
    return Outgoing(by_patient=by_patient, by_instance=by_instance)


def _combined(reconciled: Coercion, coercion: Coercion | None) -> Coercion:
    """The local record's identity at the destination trust (``coercion``), with the
    record's demographics, and the outside ID kept after the record's own other IDs."""
    if coercion is None:
        return reconciled
    return Coercion(
        patient_id=coercion.patient_id,
        issuer=coercion.issuer,
        other_ids=tuple(dict.fromkeys(coercion.other_ids + reconciled.other_ids)),
        demographics=reconciled.demographics,
    )


def _reconciled_rows(conn: Connection, *where: ColumnElement[bool]) -> list[Any]:
    query = (
        select(
            reconciled_instances.c.instance_pk,
            instances.c.sop_uid,
            reconciliations.c.patient_pk.label("record_pk"),
            reconciliations.c.outside_patient_id,
            reconciliations.c.outside_issuer,
            patients.c.patient_id,
            patients.c.issuer,
            patients.c.patient_name,
            patients.c.birth_date,
            patients.c.sex,
            patients.c.nhs_number,
        )
        .join(reconciliations, reconciliations.c.id == reconciled_instances.c.reconciliation_pk)
        .join(patients, patients.c.id == reconciliations.c.patient_pk)
        .join(instances, instances.c.id == reconciled_instances.c.instance_pk)
        .join(series, series.c.id == instances.c.series_pk)
        .join(studies, studies.c.id == series.c.study_pk)
        .where(*where)
    )
    return list(conn.execute(query).all())


def _correction(row: Any) -> Coercion:
    others = [(row.outside_patient_id, row.outside_issuer)]
    if row.nhs_number and nhs.is_valid(row.nhs_number):
        others.append((row.nhs_number, NHS_ISSUER))
    return Coercion(
        patient_id=row.patient_id,
        issuer=row.issuer,
        other_ids=tuple(dict.fromkeys(others)),
        demographics=(
            ("PatientName", row.patient_name),
            ("PatientBirthDate", row.birth_date),
            ("PatientSex", row.sex),
        ),
    )
