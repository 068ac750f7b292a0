"""The regional timeline: every study of one person across trusts, as the caller may see
them, newest first, and which partner trusts hold studies still hidden from them
(break-glass, or a relationship, opens them; other trusts are never named). The API
(``GET /api/timeline``) and the portal's timeline page both answer from here, and each
asking is one audited query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from rix import access, audit
from rix.access import EVERYTHING, Principal, trail
from rix.archive import Archive
from rix.index import queries
from rix.region import mpi, trusts


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    studies: list[dict[str, Any]]  # newest first; see ``_study``
    hidden_at: list[str]  # codes of partner trusts holding studies not shown
    records: list[mpi.Record]  # the person's records with a study shown, first seen first


def of_person(
    archive: Archive, principal: Principal, *, nhs_number: str = "", patient: str = ""
) -> Timeline:
    with archive.engine.connect() as conn:
        records = _records(conn, nhs_number, patient)
        pks = [r.pk for r in records]
        seen = queries.studies_of_records(conn, pks, scope=access.scope(principal))
        every = queries.studies_of_records(conn, pks, scope=EVERYTHING)
        by_pk = {t.pk: t.code for t in trusts.all_trusts(conn)}
        partners = set()
        if principal.trust is not None:
            partners = set(conn.execute(trusts.partners(principal.trust.pk)).scalars())
    shown = {s["study_uid"] for s in seen}
    hidden = sorted(
        {
            by_pk[s["trust_pk"]]
            for s in every
            if s["study_uid"] not in shown and s["trust_pk"] in partners
        }
    )
    found = [_study(s, by_pk) for s in seen]
    touched = trail.Touched(patient=patient, nhs_number=nhs_number)
    trail.record(
        archive.writer.post,
        principal,
        audit.Kind.QUERY,
        audit.Outcome.SUCCESS,
        touched,
        {"timeline": True, "studies": len(found), "hidden_at": hidden},
    )
    # demographics of a record come only with a study the caller may see
    refs = {s["patient"] for s in found}
    return Timeline(studies=found, hidden_at=hidden, records=[r for r in records if r.ref in refs])


def _study(row: dict[str, Any], trust_codes: dict[int, str]) -> dict[str, Any]:
    return {
        "study_uid": row["study_uid"],
        "study_date": row["study_date"],
        "description": row["study_description"],
        "accession_number": row["accession_number"],
        "modalities": [m for m in row["modalities"].split("\\") if m],
        "series": row["num_series"],
        "instances": row["num_instances"],
        "trust": trust_codes.get(row["trust_pk"], ""),
        "patient": f"{row['issuer']}/{row['patient_id']}",
    }


def _records(conn: Connection, nhs_number: str, patient: str) -> list[mpi.Record]:
    """The records of the person named; a record linked to nobody is a person alone."""
    if nhs_number:
        person = mpi.find_person(conn, nhs_number)
        return [] if person is None else mpi.records_of_person(conn, person)
    rec = mpi.find_record(conn, patient)
    if rec.person_pk is None:
        return [rec]
    return mpi.records_of_person(conn, rec.person_pk)
