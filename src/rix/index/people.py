"""The regional patient search: records matching what a clerk or clinician types, with
how many of each record's studies the caller may see.

Records are (issuer, patient ID) pairs; the MPI links them into persons
(``rix.region.mpi``), and the portal groups the answer by person. A record counts as
found only when the caller may see at least one of its studies, except that a search by
NHS number, which names one person exactly, also returns the person's records whose
studies are hidden at a partner trust: that is what the break-glass dialog offers to open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select

from rix.index.schema import patients, studies, trusts

LIMIT = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class Found:
    pk: int
    issuer: str
    patient_id: str
    name: str
    birth_date: str
    sex: str
    nhs_number: str
    person_pk: int | None
    trust_pk: int | None  # the trust whose hospital numbers the issuer names
    trust_code: str
    visible: int  # studies the caller may see
    studies: int  # all studies of the record

    @property
    def ref(self) -> str:
        return f"{self.issuer}/{self.patient_id}"


def _name_terms(words: list[str]) -> ColumnElement[bool]:
    """Every word starts a component of the name (``ada hart`` finds HARTLEY^ADA)."""
    col = patients.c.patient_name_ci
    terms = []
    for word in words:
        stem = word.upper().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        terms.append(or_(*(col.like(p + stem + "%", escape="\\") for p in ("", "%^", "% ", "%-"))))
    return and_(*terms)


def _select(scope: ColumnElement[bool]) -> Any:
    visible = select(func.count()).where(studies.c.patient_pk == patients.c.id, scope)
    return (
        select(
            patients.c.id,
            patients.c.issuer,
            patients.c.patient_id,
            patients.c.patient_name,
            patients.c.birth_date,
            patients.c.sex,
            patients.c.nhs_number,
            patients.c.person_pk,
            patients.c.num_studies,
            trusts.c.id.label("trust_pk"),
            func.coalesce(trusts.c.code, "").label("trust_code"),
            visible.scalar_subquery().label("visible"),
        )
        .select_from(patients.outerjoin(trusts, trusts.c.issuer == patients.c.issuer))
        .order_by(patients.c.patient_name_ci, patients.c.id)
    )


def _found(row: Any) -> Found:
    return Found(
        pk=row.id,
        issuer=row.issuer,
        patient_id=row.patient_id,
        name=row.patient_name,
        birth_date=row.birth_date,
        sex=row.sex,
        nhs_number=row.nhs_number,
        person_pk=row.person_pk,
        trust_pk=row.trust_pk,
        trust_code=row.trust_code,
        visible=row.visible or 0,
        studies=row.num_studies,
    )


def search(
    conn: Connection,
    *,
    text: str = "",
    nhs_number: str = "",
    birth_date: str = "",
    scope: ColumnElement[bool],
    partners: frozenset[int] = frozenset(),
) -> list[Found]:
    """Records matching every term given (name words or a hospital number in ``text``; an
    NHS number; a birth date YYYYMMDD), with every record of the persons found, so a
    person shows all the trusts that hold them. ``partners``: trusts whose hidden records
    an NHS-number search may name."""
    conditions: list[ColumnElement[bool]] = []
    if text.strip():
        words = text.split()
        conditions.append(or_(_name_terms(words), patients.c.patient_id == text.strip()))
    if nhs_number:
        conditions.append(patients.c.nhs_number == nhs_number)
    if birth_date:
        conditions.append(patients.c.birth_date == birth_date)
    if not conditions:
        return []
    first = [_found(r) for r in conn.execute(_select(scope).where(*conditions).limit(LIMIT))]
    persons = sorted({f.person_pk for f in first if f.person_pk is not None})
    more = []
    if persons:
        linked = _select(scope).where(
            patients.c.person_pk.in_(persons), patients.c.id.not_in([f.pk for f in first])
        )
        more = [_found(r) for r in conn.execute(linked)]
    shown = [f for f in first if f.visible > 0 or (nhs_number and _at_partner(f, partners))]
    linked_to_shown = {f.person_pk for f in shown}
    # a person found through a record the caller may see also shows where else they are
    # held, as the timeline does (partners only; other trusts are never named)
    shown += [
        f
        for f in first + more
        if f not in shown
        and f.person_pk is not None
        and f.person_pk in linked_to_shown
        and (f.visible > 0 or _at_partner(f, partners))
    ]
    return shown


def _at_partner(found: Found, partners: frozenset[int]) -> bool:
    return found.trust_pk in partners and found.studies > 0


def studies_held(conn: Connection, person_pk: int, at: Any) -> dict[str, int]:
    """How many studies of the person each trust among ``at`` (a subquery of trust pks)
    holds, by trust code: what a break-glass of the person opens (``rix.access.grounds``)."""
    rows = conn.execute(
        select(trusts.c.code, func.count(studies.c.id))
        .select_from(studies.join(trusts, trusts.c.id == studies.c.trust_pk))
        .where(studies.c.person_pk == person_pk, studies.c.trust_pk.in_(at))
        .group_by(trusts.c.code)
        .order_by(trusts.c.code)
    )
    return {str(code): int(count) for code, count in rows}
