"""Patient records as a trust's own systems describe them: made by an order before the
first image arrives, corrected (HL7 ADT A01/A08, the API) and merged (A40).

Every change lives in the index (DESIGN.md: stored bytes are never rewritten). A merge
moves the prior record's studies and orders to the surviving record and files their
instances under a correction (``reconciliations``, as for outside media), so QIDO and
C-FIND answer the surviving ID and every copy leaving rix carries it
(``rix.region.identity``), the prior ID among the Other Patient IDs; their WADO-RS
metadata is deleted in the same transaction and built again (``rix.index.derived``). The
prior record stays, linked by hand to the surviving record's person: images still
arriving under the old number show in the same timeline.

A merge made here is not in the stored files: ``rix reindex`` (which rebuilds the index
from the files alone) forgets it, and the trust's system must send it again.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from sqlalchemy import Connection, Integer, insert, literal, select, update

from rix.dataset import nhs
from rix.errors import Conflict, NotFound
from rix.index import derived
from rix.index.records import name_key
from rix.index.schema import (
    break_glass,
    instances,
    patients,
    reconciled_instances,
    reconciliations,
    relationships,
    series,
    studies,
)
from rix.index.workflow_tables import orders
from rix.index.write import add_other_id
from rix.region import mpi


@dataclass(frozen=True, slots=True, kw_only=True)
class Details:
    """A patient as a trust's system names them; empty values are unknown, not blank."""

    patient_id: str
    issuer: str
    name: str = ""  # DICOM PN: family^given^middle^prefix^suffix
    birth_date: str = ""  # YYYYMMDD
    sex: str = ""  # M, F, O or ''
    nhs_number: str = ""  # valid, or ''

    @property
    def ref(self) -> str:
        return f"{self.issuer}/{self.patient_id}"


def find(conn: Connection, issuer: str, patient_id: str) -> int | None:
    found = conn.execute(
        select(patients.c.id).where(
            patients.c.issuer == issuer, patients.c.patient_id == patient_id
        )
    ).scalar()
    return None if found is None else int(found)


def ensure(conn: Connection, details: Details) -> int:
    """The record (issuer, ID), made now when the trust has none yet (an order before any
    image) and linked by NHS number through the MPI as ingest links a new one; an NHS
    number learnt for a record without one is assigned (``mpi.assign_nhs_number``)."""
    if not details.patient_id or not details.issuer:
        raise Conflict("a patient record needs a hospital number and its issuer")
    pk = find(conn, details.issuer, details.patient_id)
    if pk is None:
        result = conn.execute(
            insert(patients).values(
                patient_id=details.patient_id[:64],
                issuer=details.issuer[:64],
                patient_name=details.name,
                patient_name_ci=name_key(details.name),
                birth_date=details.birth_date[:16],
                sex=details.sex[:16],
                nhs_number=details.nhs_number[:16],
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        pk = int(key[0])
        if details.nhs_number:
            mpi.on_new_record(conn, pk)
        return pk
    if details.nhs_number and not mpi.record(conn, pk).nhs_number:
        mpi.assign_nhs_number(conn, pk, details.nhs_number)
    return pk


def update_details(conn: Connection, patient_pk: int, details: Details) -> mpi.Record:
    """Name, birth date, sex and NHS number as the trust's system now has them (ADT A08);
    what the message leaves empty stays. A different NHS number for a record that has one
    is refused: re-linking a person is the MPI review's decision, never a feed's."""
    rec = mpi.record(conn, patient_pk)
    number = nhs.normalise(details.nhs_number)
    if number and rec.nhs_number and number != rec.nhs_number:
        raise Conflict(
            f"record {rec.ref} has another NHS number; a change goes through the MPI review"
        )
    values: dict[str, str] = {}
    if details.name:
        values.update(patient_name=details.name, patient_name_ci=name_key(details.name))
    if details.birth_date:
        values["birth_date"] = details.birth_date[:16]
    if details.sex:
        values["sex"] = details.sex[:16]
    if values:
        conn.execute(update(patients).where(patients.c.id == patient_pk).values(**values))
        derived.forget_metadata(conn, [patient_pk])  # merged or reconciled images show them
    if number and not rec.nhs_number:
        return mpi.assign_nhs_number(conn, patient_pk, number)
    return mpi.record(conn, patient_pk)


def merge(conn: Connection, *, prior_pk: int, surviving_pk: int, by: str, reference: str) -> int:
    """Merge the prior record into the surviving one of the same trust (ADT A40, MRG-1
    into PID-3); returns how many studies moved. Sent twice, the second moves nothing."""
    prior, surviving = mpi.record(conn, prior_pk), mpi.record(conn, surviving_pk)
    if prior.pk == surviving.pk:
        raise Conflict("a record cannot be merged into itself")
    if prior.issuer != surviving.issuer:
        raise Conflict("records of different issuers are linked through the MPI, not merged")
    moved = [
        int(pk)
        for pk in conn.execute(select(studies.c.id).where(studies.c.patient_pk == prior.pk))
        .scalars()
        .all()
    ]
    if moved:
        _correct_instances(conn, prior, surviving, moved, by=by, reference=reference)
        conn.execute(update(studies).where(studies.c.id.in_(moved)).values(patient_pk=surviving.pk))
        _move_counts(conn, prior.pk, surviving.pk)
    conn.execute(
        update(orders).where(orders.c.patient_pk == prior.pk).values(patient_pk=surviving.pk)
    )
    add_other_id(conn, surviving.pk, prior.patient_id)
    derived.forget_metadata(conn, [prior.pk, surviving.pk])  # rebuilt naming the surviving
    old_person = prior.person_pk
    person = mpi.link(conn, prior.pk, surviving.pk)  # studies follow the person too
    if old_person is not None and old_person != person:
        _carry_grounds(conn, old_person, person)
    return len(moved)


def _correct_instances(
    conn: Connection,
    prior: mpi.Record,
    surviving: mpi.Record,
    moved: list[int],
    *,
    by: str,
    reference: str,
) -> None:
    """File the moved studies' instances under a correction naming the surviving record
    (``rix.region.identity`` applies it on every way out); instances already corrected
    (outside media reconciled to the prior record) follow the surviving record."""
    conn.execute(
        update(reconciliations)
        .where(reconciliations.c.patient_pk == prior.pk)
        .values(patient_pk=surviving.pk)
    )
    upload = f"merge:{reference}"[:64]
    key = hashlib.sha256(prior.ref.encode("utf-8")).hexdigest()[:16]
    pk = conn.execute(
        select(reconciliations.c.id).where(
            reconciliations.c.upload_id == upload, reconciliations.c.outside_key == key
        )
    ).scalar()
    if pk is None:
        result = conn.execute(
            insert(reconciliations).values(
                upload_id=upload,
                outside_key=key,
                outside_patient_id=prior.patient_id,
                outside_issuer=prior.issuer,
                outside_name=prior.name,
                outside_birth_date=prior.birth_date,
                outside_sex=prior.sex,
                patient_pk=surviving.pk,
                actor=by[:128],
                created_at=time.time(),
            )
        )
        assert result.inserted_primary_key is not None
        pk = result.inserted_primary_key[0]
    uncorrected = (
        select(instances.c.id, literal(int(pk), Integer))
        .join(series, series.c.id == instances.c.series_pk)
        .where(
            series.c.study_pk.in_(moved),
            ~instances.c.id.in_(select(reconciled_instances.c.instance_pk)),
        )
    )
    conn.execute(
        insert(reconciled_instances).from_select(["instance_pk", "reconciliation_pk"], uncorrected)
    )


def _move_counts(conn: Connection, prior_pk: int, surviving_pk: int) -> None:
    row = conn.execute(
        select(patients.c.num_studies, patients.c.num_series, patients.c.num_instances).where(
            patients.c.id == prior_pk
        )
    ).one()
    conn.execute(
        update(patients)
        .where(patients.c.id == surviving_pk)
        .values(
            num_studies=patients.c.num_studies + row.num_studies,
            num_series=patients.c.num_series + row.num_series,
            num_instances=patients.c.num_instances + row.num_instances,
        )
    )
    conn.execute(
        update(patients)
        .where(patients.c.id == prior_pk)
        .values(num_studies=0, num_series=0, num_instances=0)
    )


def _carry_grounds(conn: Connection, old_person: int, person: int) -> None:
    """Orders, encounters and break-glass recorded for the prior record's person hold for
    the merged one, once no record is left with the old person."""
    if mpi.records_of_person(conn, old_person):
        return
    for table in (relationships, break_glass):
        conn.execute(update(table).where(table.c.person_pk == old_person).values(person_pk=person))


def record_of(conn: Connection, issuer: str, patient_id: str) -> mpi.Record:
    pk = find(conn, issuer, patient_id)
    if pk is None:
        raise NotFound(f"no patient record {issuer}/{patient_id}")
    return mpi.record(conn, pk)
