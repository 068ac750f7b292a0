"""The master patient index: one person, many local records, linked by NHS number.

A patient record is a trust's local ID (issuer, PatientID). Records are linked into one
person when they carry the same valid NHS number and their dates of birth (and sexes,
when both are known) agree. Anything less certain goes to the review list and is never
linked automatically: a wrong link shows one person's images in another's timeline.
Links made or broken by hand are final; the automatic linker never touches them again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, insert, select, update

from rix.dataset import nhs
from rix.errors import Conflict, NotFound
from rix.index import derived
from rix.index.schema import mpi_reviews, patients, persons, studies, trusts


class LinkState(StrEnum):
    NONE = ""  # no NHS number, or not linked yet
    AUTO = "auto"  # linked by NHS number and date of birth
    MANUAL = "manual"  # linked by an administrator
    UNLINKED = "unlinked"  # unlinked by an administrator: stays so
    REVIEW = "review"  # waiting for an administrator


class ReviewKind(StrEnum):
    CONFLICT = "conflicting-demographics"
    INVALID = "invalid-nhs-number"
    NO_BIRTH_DATE = "missing-birth-date"


@dataclass(frozen=True, slots=True, kw_only=True)
class Review:
    id: int
    patient: str  # issuer/patient ID
    nhs_number: str
    kind: str
    detail: dict[str, Any]
    created_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    pk: int
    patient_id: str
    issuer: str
    trust: str
    name: str
    birth_date: str
    sex: str
    nhs_number: str
    person_pk: int | None
    link_state: str

    @property
    def ref(self) -> str:
        return f"{self.issuer}/{self.patient_id}"


def _record(row: Any) -> Record:
    return Record(
        pk=row.id,
        patient_id=row.patient_id,
        issuer=row.issuer,
        trust=row.code or "",
        name=row.patient_name,
        birth_date=row.birth_date,
        sex=row.sex,
        nhs_number=row.nhs_number,
        person_pk=row.person_pk,
        link_state=row.link_state,
    )


def _records() -> Any:
    # a record is the trust's whose issuer it carries (rix.region.trusts)
    return select(patients, trusts.c.code).outerjoin(trusts, trusts.c.issuer == patients.c.issuer)


def record(conn: Connection, patient_pk: int) -> Record:
    row = conn.execute(_records().where(patients.c.id == patient_pk)).first()
    if row is None:
        raise NotFound("no such patient record")
    return _record(row)


def find_record(conn: Connection, ref: str) -> Record:
    """A record by ``issuer/patient ID`` (the issuer may be empty: ``/ID``)."""
    issuer, sep, patient_id = ref.partition("/")
    if not sep:
        raise NotFound("a patient record is named issuer/patient-id")
    row = conn.execute(
        _records().where(patients.c.issuer == issuer, patients.c.patient_id == patient_id)
    ).first()
    if row is None:
        raise NotFound(f"no patient record {ref!r}")
    return _record(row)


def records_of_person(conn: Connection, person_pk: int) -> list[Record]:
    rows = conn.execute(_records().where(patients.c.person_pk == person_pk).order_by(patients.c.id))
    return [_record(r) for r in rows]


def on_new_record(conn: Connection, patient_pk: int) -> None:
    """Link a record just added by ingest, or queue it for review (in ingest's transaction)."""
    rec = record(conn, patient_pk)
    if rec.nhs_number:
        _link_by_nhs(conn, rec)


def assign_nhs_number(conn: Connection, patient_pk: int, value: str) -> Record:
    """An NHS number learnt later (HL7 ADT, an administrator); links unless set by hand."""
    value = nhs.normalise(value)
    conn.execute(update(patients).where(patients.c.id == patient_pk).values(nhs_number=value))
    derived.forget_metadata(conn, [patient_pk])  # corrected images list it (Other Patient IDs)
    rec = record(conn, patient_pk)
    if rec.link_state not in (LinkState.MANUAL, LinkState.UNLINKED) and rec.person_pk is None:
        _link_by_nhs(conn, rec)
    return record(conn, patient_pk)


def _link_by_nhs(conn: Connection, rec: Record) -> None:
    if not nhs.is_valid(rec.nhs_number):
        _review(conn, rec, None, ReviewKind.INVALID, {"nhs_number": rec.nhs_number})
        return
    person = find_person(conn, rec.nhs_number)
    if person is None:
        person = _new_person(conn, rec.nhs_number)
        _set_person(conn, rec.pk, person, LinkState.AUTO)
        return
    others = records_of_person(conn, person)
    if others and not rec.birth_date:
        _review(conn, rec, person, ReviewKind.NO_BIRTH_DATE, {})
        return
    differences = _differences(rec, others)
    if differences:
        _review(conn, rec, person, ReviewKind.CONFLICT, differences)
        return
    _set_person(conn, rec.pk, person, LinkState.AUTO)


def _differences(rec: Record, others: list[Record]) -> dict[str, Any]:
    """Demographics of ``rec`` that contradict a record already linked to the person."""
    out: dict[str, Any] = {}
    for other in others:
        if other.birth_date and other.birth_date != rec.birth_date:
            out["birth_date"] = [other.birth_date, rec.birth_date]
        if other.sex in ("M", "F") and rec.sex in ("M", "F") and other.sex != rec.sex:
            out["sex"] = [other.sex, rec.sex]
    return out


def _new_person(conn: Connection, nhs_number: str | None) -> int:
    result = conn.execute(insert(persons).values(nhs_number=nhs_number, created_at=time.time()))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _set_person(conn: Connection, patient_pk: int, person_pk: int | None, state: LinkState) -> None:
    conn.execute(
        update(patients)
        .where(patients.c.id == patient_pk)
        .values(person_pk=person_pk, link_state=state.value)
    )
    _studies_follow(conn, patient_pk, person_pk)


def _studies_follow(conn: Connection, patient_pk: int, person_pk: int | None) -> None:
    """``studies.person_pk`` is the patient's, always (the access filter reads it)."""
    conn.execute(
        update(studies).where(studies.c.patient_pk == patient_pk).values(person_pk=person_pk)
    )


def _review(
    conn: Connection, rec: Record, person: int | None, kind: ReviewKind, detail: dict[str, Any]
) -> None:
    conn.execute(
        insert(mpi_reviews).values(
            patient_pk=rec.pk,
            person_pk=person,
            nhs_number=rec.nhs_number[:16],
            kind=kind.value,
            detail=json.dumps(detail, sort_keys=True),
            created_at=time.time(),
        )
    )
    if kind is not ReviewKind.INVALID:
        _set_person(conn, rec.pk, None, LinkState.REVIEW)


def open_reviews(conn: Connection) -> list[Review]:
    rows = conn.execute(
        select(mpi_reviews, patients.c.issuer, patients.c.patient_id)
        .join(patients, patients.c.id == mpi_reviews.c.patient_pk)
        .where(mpi_reviews.c.resolved_at.is_(None))
        .order_by(mpi_reviews.c.id)
    )
    return [
        Review(
            id=r.id,
            patient=f"{r.issuer}/{r.patient_id}",
            nhs_number=r.nhs_number,
            kind=r.kind,
            detail=json.loads(r.detail or "{}"),
            created_at=r.created_at,
        )
        for r in rows
    ]


def _resolve(conn: Connection, patient_pk: int, resolution: str) -> None:
    conn.execute(
        update(mpi_reviews)
        .where(mpi_reviews.c.patient_pk == patient_pk, mpi_reviews.c.resolved_at.is_(None))
        .values(resolved_at=time.time(), resolution=resolution)
    )


def link(conn: Connection, patient_pk: int, to_patient_pk: int) -> int:
    """Link a record to the person of another by hand; returns the person."""
    if patient_pk == to_patient_pk:
        raise Conflict("a record cannot be linked to itself")
    target = record(conn, to_patient_pk)
    person = target.person_pk if target.person_pk is not None else person_of(conn, to_patient_pk)
    _set_person(conn, patient_pk, person, LinkState.MANUAL)
    _resolve(conn, patient_pk, f"linked by hand to person {person}")
    return person


def unlink(conn: Connection, patient_pk: int) -> None:
    """Take a record out of its person by hand; the automatic linker leaves it alone."""
    record(conn, patient_pk)
    _set_person(conn, patient_pk, None, LinkState.UNLINKED)
    _resolve(conn, patient_pk, "unlinked by hand")


def dismiss(conn: Connection, review_id: int, resolution: str = "dismissed") -> None:
    result = conn.execute(
        update(mpi_reviews)
        .where(mpi_reviews.c.id == review_id, mpi_reviews.c.resolved_at.is_(None))
        .values(resolved_at=time.time(), resolution=resolution)
    )
    if not result.rowcount:
        raise NotFound(f"no open review {review_id}")


def person_of(conn: Connection, patient_pk: int) -> int:
    """The person a record belongs to, made for it alone if it has none yet (a
    relationship or break-glass names one record before anyone links it)."""
    rec = record(conn, patient_pk)
    if rec.person_pk is not None:
        return rec.person_pk
    person = _new_person(conn, None)
    conn.execute(update(patients).where(patients.c.id == patient_pk).values(person_pk=person))
    _studies_follow(conn, patient_pk, person)
    return person


def person_for_nhs(conn: Connection, nhs_number: str) -> int:
    """The person with this NHS number; made (with no records yet) if nobody has it, so an
    order or encounter can be recorded before the first image arrives."""
    value = nhs.normalise(nhs_number)
    if not nhs.is_valid(value):
        raise Conflict(f"{value!r} is not a valid NHS number")
    found = find_person(conn, value)
    return found if found is not None else _new_person(conn, value)


def find_person(conn: Connection, nhs_number: str) -> int | None:
    """The person with this NHS number, if any (reading only)."""
    found = conn.execute(
        select(persons.c.id).where(persons.c.nhs_number == nhs.normalise(nhs_number))
    ).scalar()
    return None if found is None else int(found)
