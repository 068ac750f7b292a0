"""A small region for the reporting tests, in the test process: trust A (the reporting
radiologists'), B (a partner of A) and C (no agreement), their staff, and studies stored
through the one ingest path as each trust's; an order is written into the index as the
order workflow would leave it."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import delete, select, update

from rix.access import Principal
from rix.archive import Archive
from rix.auth.users import add_user, get_user, parse_roles
from rix.index.database import begin_write
from rix.index.schema import jobs, patients, studies, trusts
from rix.index.workflow_tables import orders, report_claims, reports
from rix.ingest import ingest, received_from_file
from rix.region.trusts import add_agreement, add_trust, get_trust
from tests.peers import postgres
from tests.peers.archive import opened
from tests.peers.dicomweb import part10
from tests.peers.synthetic import ct_slice

STAFF = {
    "a.rad": ("A", "radiologist"),
    "a.rad2": ("A", "radiologist"),
    "a.clin": ("A", "clinician"),
    "b.rad": ("B", "radiologist"),
    "c.rad": ("C", "radiologist"),
    "a.admin": ("A", "trust-admin"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Studies:
    a_head: str  # CT head at A, no order
    b_knee: str  # MR knee at B, no order
    b_chest: str  # CR chest at B, ordered as an emergency, chest sub-specialty, site B1
    c_ct: str  # CT at C: no agreement with A
    a_key_only: str  # key object notes only, at A: nothing to report
    a_elsewhere: str  # CT at A with a Basic Text SR stored from elsewhere
    order_pk: int


@contextmanager
def region(backend: str, folder: Path, **settings: Any) -> Iterator[tuple[Archive, Studies]]:
    """An archive of its own on ``backend`` (a fresh PostgreSQL database, or SQLite in
    ``folder``), with the region built, dropped on exit."""
    url = postgres.create_database(migrated=True) if backend == "postgresql" else ""
    try:
        with opened(folder / "data", url, **settings) as archive:
            yield archive, build(archive)
    finally:
        if url:
            postgres.drop_database(url)


def principal(archive: Archive, username: str) -> Principal:
    with archive.engine.connect() as conn:
        return Principal.of_user(get_user(conn, username), "127.0.0.1")


def store(
    archive: Archive,
    *,
    trust: str,
    patient_id: str,
    modality: str,
    body_part: str = "",
    description: str = "",
    study_uid: str = "",
    name: str = "Report^Rita",
) -> str:
    study_uid = study_uid or str(generate_uid())
    ds = ct_slice(
        patient_id=patient_id,
        patient_name=name,
        study_uid=study_uid,
        series_uid=str(generate_uid()),
        number=1,
        modality=modality,
    )
    ds.StudyDescription = description
    if body_part:
        ds.BodyPartExamined = body_part
    with archive.engine.connect() as conn:
        owner = get_trust(conn, trust)
    ingest(archive, received_from_file(part10(ds), source="test", trust=owner))
    return study_uid


def _basic_text_sr(study_uid: str, patient_id: str) -> Dataset:
    ds = ct_slice(
        patient_id=patient_id,
        patient_name="Report^Rita",
        study_uid=study_uid,
        series_uid=str(generate_uid()),
        number=1,
        modality="SR",
    )
    for keyword in ("Rows", "Columns", "PixelData", "BitsAllocated", "BitsStored", "HighBit"):
        delattr(ds, keyword)
    for keyword in ("SamplesPerPixel", "PhotometricInterpretation", "PixelRepresentation"):
        delattr(ds, keyword)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    ds.ValueType = "CONTAINER"
    return ds


def build(archive: Archive) -> Studies:
    with begin_write(archive.engine) as conn:
        for code in ("A", "B", "C"):
            add_trust(conn, code=code, name=f"Trust {code}", issuer=f"{code}-MRN")
        add_agreement(conn, "A", "B")
        for username, (trust, role) in STAFF.items():
            add_user(
                conn,
                username=username,
                display_name=username.upper(),
                trust=trust,
                roles=parse_roles(role),
                password="",
            )
    a_elsewhere = store(archive, trust="A", patient_id="A-3", modality="CT", body_part="CHEST")
    with archive.engine.connect() as conn:
        owner = get_trust(conn, "A")
    sr = _basic_text_sr(a_elsewhere, "A-3")
    ingest(archive, received_from_file(part10(sr), source="test", trust=owner))
    found = Studies(
        a_head=store(
            archive,
            trust="A",
            patient_id="A-1",
            modality="CT",
            body_part="HEAD",
            description="CT head",
        ),
        b_knee=store(
            archive,
            trust="B",
            patient_id="B-1",
            modality="MR",
            body_part="KNEE",
            description="MR knee",
        ),
        b_chest=store(archive, trust="B", patient_id="B-2", modality="CR", description="Chest"),
        c_ct=store(archive, trust="C", patient_id="C-1", modality="CT", description="CT at C"),
        a_key_only=store(archive, trust="A", patient_id="A-2", modality="KO"),
        a_elsewhere=a_elsewhere,
        order_pk=0,
    )
    with begin_write(archive.engine) as conn:
        row = conn.execute(
            select(studies.c.patient_pk, studies.c.trust_pk).where(
                studies.c.study_uid == found.b_chest
            )
        ).one()
        now = time.time()
        order_pk = conn.execute(
            orders.insert()
            .values(
                trust_pk=row.trust_pk,
                patient_pk=row.patient_pk,
                placer_number="PL-77",
                filler_number="FL-88",
                accession_number="ACC-CXR",
                status="completed",
                priority="emergency",
                modality="CR",
                body_part="CHEST",
                procedure_code="XCHES",
                procedure_text="XR chest",
                subspecialty="chest",
                site_code="B1",
                ordering_provider="Who^Doctor",
                study_uid=found.b_chest,
                created_at=now,
                updated_at=now,
            )
            .returning(orders.c.id)
        ).scalar_one()
    return dataclasses.replace(found, order_pk=int(order_pk))


def forget_reporting(archive: Archive) -> None:
    """Each test starts with no claims, reports or jobs."""
    with begin_write(archive.engine) as conn:
        conn.execute(delete(report_claims))
        conn.execute(delete(jobs))
        conn.execute(update(reports).values(parent_pk=None))
        conn.execute(delete(reports))


def age(archive: Archive, study_uid: str, hours: float) -> None:
    """Make a study arrive ``hours`` ago."""
    with begin_write(archive.engine) as conn:
        conn.execute(
            update(studies)
            .where(studies.c.study_uid == study_uid)
            .values(created_at=time.time() - hours * 3600)
        )


def expire_claims(archive: Archive) -> None:
    with begin_write(archive.engine) as conn:
        conn.execute(update(report_claims).values(expires_at=time.time() - 1))


def trust_pk(archive: Archive, code: str) -> int:
    with archive.engine.connect() as conn:
        return int(conn.execute(select(trusts.c.id).where(trusts.c.code == code)).scalar_one())


def patient_name(archive: Archive, study_uid: str) -> str:
    with archive.engine.connect() as conn:
        return str(
            conn.execute(
                select(patients.c.patient_name)
                .join(studies, studies.c.patient_pk == patients.c.id)
                .where(studies.c.study_uid == study_uid)
            ).scalar_one()
        )


@dataclass
class Race:
    """Run callables at the same moment on threads; collect what each returned or
    raised."""

    results: list[Any] = field(default_factory=list)

    def run(self, *calls: Callable[[], Any]) -> list[Any]:
        barrier = threading.Barrier(len(calls))
        lock = threading.Lock()

        def one(call: Callable[[], Any]) -> None:
            barrier.wait()
            try:
                outcome: Any = call()
            except Exception as exc:  # the loser's refusal is the point
                outcome = exc
            with lock:
                self.results.append(outcome)

        threads = [threading.Thread(target=one, args=(c,)) for c in calls]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        return self.results
