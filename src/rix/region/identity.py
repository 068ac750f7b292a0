"""Patient identity on the way out: images sent to a trust carry that trust's numbers.

A PACS files images by its own hospital number. When rix sends a study to an AE that
belongs to a trust (C-MOVE destination, C-GET requester) and the patient is linked to a
record at that trust, PatientID and Issuer of Patient ID become the trust's; otherwise the
source's ID and issuer are kept, stated explicitly, and Other Patient IDs Sequence lists
the NHS number and the person's other records, so the receiving PACS can reconcile.
The stored bytes never change (DESIGN.md): this is applied to the copy being sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from sqlalchemy import Connection

from rix.index import queries
from rix.region import nhs
from rix.region.trusts import Trust

NHS_ISSUER = "NHS"


@dataclass(frozen=True, slots=True, kw_only=True)
class Coercion:
    patient_id: str
    issuer: str
    other_ids: tuple[tuple[str, str], ...]  # (ID, issuer), the source's first

    def apply(self, ds: Dataset) -> None:
        ds.PatientID = self.patient_id
        if self.issuer:
            ds.IssuerOfPatientID = self.issuer
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
