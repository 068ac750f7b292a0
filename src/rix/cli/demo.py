"""A small synthetic region for ``make run``: patients of three trusts with CT, MR, CR and US.

Everything is generated (names, numbers, pixels); UIDs are derived deterministically so
loading the demo twice stores nothing twice. Never real patient data.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from sqlalchemy import Connection, update

from rix.access import SYSTEM, Principal
from rix.admin import region as admin
from rix.archive import Archive
from rix.auth.users import get_user, parse_roles
from rix.index.database import begin_write
from rix.index.schema import orders as order_rows
from rix.index.schema import reports as report_rows
from rix.index.schema import studies
from rix.ingest import ingest, received_from_file
from rix.region import aes, trusts
from rix.region import patients as records
from rix.workflow import orders, reporting_worklist, reports, rota, turnaround

SOP_CLASS = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoPatient:
    name: str
    patient_id: str
    issuer: str
    birth_date: str
    sex: str
    nhs_number: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoStudy:
    patient: DemoPatient
    date: str
    modality: str
    description: str
    body_part: str
    images: int
    accession: str


TRUSTS = {"EMH": "East Midlands Hospitals", "NGH": "Northgate General", "SSX": "South Sussex"}

PATIENTS = (
    DemoPatient(
        name="Hartley^Ada",
        patient_id="EMH100001",
        issuer="EMH",
        birth_date="19560312",
        sex="F",
        nhs_number="9434765919",
    ),
    DemoPatient(
        name="Okafor^Daniel",
        patient_id="EMH100002",
        issuer="EMH",
        birth_date="19811107",
        sex="M",
        nhs_number="9434765927",
    ),
    DemoPatient(
        name="Hartley^Ada",
        patient_id="N-55021",
        issuer="NGH",
        birth_date="19560312",
        sex="F",
        nhs_number="9434765919",
    ),
    DemoPatient(
        name="Whitfield^Rose",
        patient_id="N-55022",
        issuer="NGH",
        birth_date="19730530",
        sex="F",
        nhs_number="9434765935",
    ),
    DemoPatient(
        name="Patel^Sanjay",
        patient_id="SSX-7781",
        issuer="SSX",
        birth_date="19490121",
        sex="M",
        nhs_number="9434765943",
    ),
    DemoPatient(
        name="Brennan^Siobhan",
        patient_id="SSX-7782",
        issuer="SSX",
        birth_date="19920814",
        sex="F",
        nhs_number="9434765951",
    ),
    # Daniel Okafor's NHS number with another date of birth: the MPI review list's example
    DemoPatient(
        name="Okafor^Daniel",
        patient_id="SSX-7790",
        issuer="SSX",
        birth_date="19811117",
        sex="M",
        nhs_number="9434765927",
    ),
)

STUDIES = (
    DemoStudy(
        patient=PATIENTS[0],
        date="20240114",
        modality="CT",
        description="CT Head",
        body_part="HEAD",
        images=12,
        accession="EMH24A001",
    ),
    DemoStudy(
        patient=PATIENTS[0],
        date="20250903",
        modality="MR",
        description="MR Brain",
        body_part="BRAIN",
        images=8,
        accession="EMH25A114",
    ),
    DemoStudy(
        patient=PATIENTS[1],
        date="20251020",
        modality="CR",
        description="XR Chest PA",
        body_part="CHEST",
        images=1,
        accession="EMH25B221",
    ),
    DemoStudy(
        patient=PATIENTS[2],
        date="20260211",
        modality="CT",
        description="CT Chest",
        body_part="CHEST",
        images=12,
        accession="NGH26C003",
    ),
    DemoStudy(
        patient=PATIENTS[3],
        date="20260418",
        modality="US",
        description="US Abdomen",
        body_part="ABDOMEN",
        images=3,
        accession="NGH26U019",
    ),
    DemoStudy(
        patient=PATIENTS[4],
        date="20231130",
        modality="CR",
        description="XR Knee Left",
        body_part="KNEE",
        images=2,
        accession="SSX23R877",
    ),
    DemoStudy(
        patient=PATIENTS[4],
        date="20260702",
        modality="MR",
        description="MR Knee Left",
        body_part="KNEE",
        images=8,
        accession="SSX26M102",
    ),
    DemoStudy(
        patient=PATIENTS[5],
        date="20261101",
        modality="US",
        description="US Pelvis",
        body_part="PELVIS",
        images=3,
        accession="SSX26U440",
    ),
    DemoStudy(
        patient=PATIENTS[6],
        date="20261115",
        modality="CR",
        description="XR Wrist Right",
        body_part="WRIST",
        images=1,
        accession="SSX26R911",
    ),
)

DEMO_PASSWORD = "rix-demo"  # every demo user's; printed by `make run`, never for real use
USERS = (
    ("emh.clinician", "clinician", "EMH"),
    ("emh.radiologist", "radiologist", "EMH"),
    ("emh.radiographer", "radiographer", "EMH"),
    ("emh.admin", "trust-admin", "EMH"),
    ("ngh.clinician", "clinician", "NGH"),
    ("ngh.radiologist", "radiologist", "NGH"),
    ("ssx.clinician", "clinician", "SSX"),
    ("ssx.radiologist", "radiologist", "SSX"),
    ("region.admin", "region-admin", ""),
    ("auditor", "auditor", ""),
)
AE_PORTS = {"EMH": 11113, "NGH": 11114, "SSX": 11115}


def _uid(*parts: object) -> str:
    """A 2.25 UID (PS3.5 B.2) from a name-based UUID, so every run derives the same ones."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, '/'.join(['rix-demo', *map(str, parts)])).int}"


def _pixels(modality: str, index: int, size: int = 128) -> np.ndarray[Any, np.dtype[np.uint16]]:
    """A phantom: a bright disc on a soft background, moving slightly from slice to slice."""
    y, x = np.mgrid[0:size, 0:size]
    cx, cy = size / 2 + 10 * np.sin(index / 3), size / 2
    radius = size * (0.30 + 0.05 * np.cos(index / 4))
    disc = ((x - cx) ** 2 + (y - cy) ** 2) < radius**2
    base = {"CT": 1000, "MR": 300, "CR": 1500, "US": 60}[modality]
    image = base + 0.25 * base * np.sin(x / 9.0) + disc * base
    return np.asarray(image, dtype=np.uint16)


def instance(study: DemoStudy, index: int) -> Dataset:
    p = study.patient
    ds = Dataset()
    ds.SOPClassUID = SOP_CLASS[study.modality]
    ds.SOPInstanceUID = _uid(study.accession, index)
    ds.StudyInstanceUID = _uid(study.accession)
    ds.SeriesInstanceUID = _uid(study.accession, "series")
    ds.PatientName = p.name
    ds.PatientID = p.patient_id
    ds.IssuerOfPatientID = p.issuer
    ds.PatientBirthDate = p.birth_date
    ds.PatientSex = p.sex
    other = Dataset()
    other.PatientID = p.nhs_number
    other.IssuerOfPatientID = "NHS"
    ds.OtherPatientIDsSequence = [other]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
    ds.AccessionNumber = study.accession
    ds.StudyID = study.accession[-3:]
    ds.StudyDescription = study.description
    ds.SeriesDescription = study.description
    ds.ReferringPhysicianName = "Demo^Referrer"
    ds.InstitutionName = TRUSTS[p.issuer]
    ds.Modality = study.modality
    ds.BodyPartExamined = study.body_part
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    pixels = _pixels(study.modality, index)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.WindowCenter, ds.WindowWidth = int(pixels.mean()), int(pixels.max() - pixels.min()) or 1
    ds.PixelData = pixels.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def instances() -> Iterator[Dataset]:
    for study in STUDIES:
        for index in range(study.images):
            yield instance(study, index)


def encode(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def setup_region(archive: Archive) -> None:
    """Trusts, their PACS AE titles (where transfers go), users of every role, the
    EMH-NGH agreement and a referral of Ada Hartley at NGH (so NGH staff see her EMH
    images); idempotent."""
    principal = SYSTEM
    for code, name in TRUSTS.items():
        admin.add_trust(archive, principal, code, name, code, pacs_ae=f"{code}_PACS")
        admin.add_site(archive, principal, code, code + "1", name + " main site")
        peer = aes.RemoteAE(
            title=f"{code}_PACS", host="127.0.0.1", port=AE_PORTS[code], description="demo"
        )
        admin.add_ae(archive, principal, peer, code)
    admin.add_agreement(archive, principal, "EMH", "NGH", "demo sharing agreement")
    for username, role, trust in USERS:
        admin.add_user(
            archive,
            principal,
            username=username,
            roles=parse_roles(role),
            trust=trust,
            display_name=username.replace(".", " ").title(),
            password=DEMO_PASSWORD,
        )
    admin.record_relationship(
        archive,
        principal,
        trust="NGH",
        nhs_number="9434765919",
        kind="referral",
        reference="NGH-REF-0001",
    )


# --- the reporting week (issue 7): orders, reports, breaches and a rota ---------------------

HOUR = 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoCase:
    """A demo study's place in the demo's reporting week: when it arrived (hours before the
    demo was loaded), its order's priority ('': no order, so outpatient) and, when it is
    reported, how long after arrival, by whom and as what."""

    accession: str
    arrived_hours_ago: float
    priority: str = ""
    reported_after_hours: float | None = None
    reporter: str = ""
    signed_as: str = "final"


# targets: emergency 1 h, inpatient 24 h, outpatient 7 d (``turnaround_targets``)
CASES = (
    # EMH: an emergency chest film waiting 3 h (breach), an MR brain waiting 5 h (in time),
    # a CT head reported in 70 h (outpatient: on time)
    DemoCase(accession="EMH25B221", arrived_hours_ago=3, priority="emergency"),
    DemoCase(accession="EMH25A114", arrived_hours_ago=5),
    DemoCase(
        accession="EMH24A001",
        arrived_hours_ago=168,
        reported_after_hours=70,
        reporter="emh.radiologist",
    ),
    # NGH: an inpatient US waiting 30 h (breach); a CT chest reported by EMH's radiologist
    # (the shared service) 7.5 days after it arrived (late)
    DemoCase(accession="NGH26U019", arrived_hours_ago=30, priority="inpatient"),
    DemoCase(
        accession="NGH26C003",
        arrived_hours_ago=192,
        reported_after_hours=180,
        reporter="emh.radiologist",
    ),
    # SSX: an outpatient MR waiting 8 days (breach); an emergency wrist reported in 45 min
    # and a knee film in 2 days (on time), an inpatient US reported in 30 h (late)
    DemoCase(accession="SSX26M102", arrived_hours_ago=190, priority="outpatient"),
    DemoCase(
        accession="SSX26R911",
        arrived_hours_ago=48,
        priority="emergency",
        reported_after_hours=0.75,
        reporter="ssx.radiologist",
    ),
    DemoCase(
        accession="SSX23R877",
        arrived_hours_ago=144,
        priority="outpatient",
        reported_after_hours=48,
        reporter="ssx.radiologist",
    ),
    DemoCase(
        accession="SSX26U440",
        arrived_hours_ago=96,
        priority="inpatient",
        reported_after_hours=30,
        reporter="ssx.radiologist",
        signed_as="preliminary",
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoBooking:
    """An order scheduled ahead, with no study yet: what the Modality Worklist answers."""

    placer: str
    patient: DemoPatient
    modality: str
    body_part: str
    procedure: str
    in_hours: float
    priority: str = "outpatient"


BOOKINGS = (
    DemoBooking(
        placer="DEMO-B1",
        patient=PATIENTS[1],
        modality="CT",
        body_part="ABDOMEN",
        procedure="CT Abdomen Pelvis",
        in_hours=2,
    ),
    DemoBooking(
        placer="DEMO-B2",
        patient=PATIENTS[3],
        modality="MR",
        body_part="PELVIS",
        procedure="MR Pelvis",
        in_hours=26,
    ),
    DemoBooking(
        placer="DEMO-B3",
        patient=PATIENTS[5],
        modality="US",
        body_part="PELVIS",
        procedure="US Pelvis follow-up",
        in_hours=3,
        priority="inpatient",
    ),
    DemoBooking(
        placer="DEMO-B4",
        patient=PATIENTS[4],
        modality="CR",
        body_part="KNEE",
        procedure="XR Knee Left",
        in_hours=50,
    ),
)
RADIOLOGISTS = tuple((u, t) for u, role, t in USERS if role == "radiologist")
STUDY_OF = {s.accession: s for s in STUDIES}


def _details(p: DemoPatient) -> records.Details:
    return records.Details(
        patient_id=p.patient_id,
        issuer=p.issuer,
        name=p.name,
        birth_date=p.birth_date,
        sex=p.sex,
        nhs_number=p.nhs_number,
    )


def _order(
    conn: Connection, trust: trusts.Trust, patient: DemoPatient, **fields: Any
) -> tuple[orders.Order, bool]:
    """One demo order, referred by the demo referrer from the trust's first site."""
    details = orders.OrderDetails(
        site_code=patient.issuer + "1", ordering_provider="Demo^Referrer", reason="demo", **fields
    )
    return orders.create(
        conn, SYSTEM, trust=trust, patient=_details(patient), details=details, source="demo"
    )


def _place_orders(archive: Archive, now: float) -> bool:
    """The orders of the ordered cases (matched at once to their studies by accession
    number) and the bookings; True when they are new (a first load)."""
    new = False
    with begin_write(archive.engine) as conn:
        by_code = {t.code: t for t in trusts.all_trusts(conn)}
        for case in CASES:
            if not case.priority:
                continue
            study = STUDY_OF[case.accession]
            ordered = now - (case.arrived_hours_ago + 1) * HOUR
            order, created = _order(
                conn,
                by_code[study.patient.issuer],
                study.patient,
                placer_number=f"DEMO-{case.accession}",
                accession_number=case.accession,
                priority=orders.Priority(case.priority),
                modality=study.modality,
                body_part=study.body_part,
                procedure_text=study.description,
                ordered_at=ordered,
                scheduled_at=ordered,
            )
            new |= created
            if created:  # demo data: the order is as old as the story says
                conn.execute(
                    update(order_rows)
                    .where(order_rows.c.id == order.pk)
                    .values(created_at=ordered, updated_at=ordered)
                )
        for booking in BOOKINGS:
            _, created = _order(
                conn,
                by_code[booking.patient.issuer],
                booking.patient,
                placer_number=booking.placer,
                priority=orders.Priority(booking.priority),
                modality=booking.modality,
                body_part=booking.body_part,
                procedure_text=booking.procedure,
                scheduled_at=round(now / HOUR + booking.in_hours) * HOUR,
            )
            new |= created
    return new


def _backdate(archive: Archive, now: float) -> None:
    """Demo data only: move the studies' arrival (``studies.created_at``, where the
    turnaround clock starts) back over the last eight days with a direct UPDATE of the
    index, so the worklist and the dashboard have a week to show. Never done to real
    studies: an arrival is what the archive saw."""
    with begin_write(archive.engine) as conn:
        for case in CASES:
            conn.execute(
                update(studies)
                .where(studies.c.study_uid == _uid(case.accession))
                .values(created_at=now - case.arrived_hours_ago * HOUR)
            )


def _user(archive: Archive, username: str) -> Principal:
    with archive.engine.connect() as conn:
        return Principal.of_user(get_user(conn, username), "demo")


def _sign_reports(archive: Archive, now: float) -> None:
    """Each reported case claimed and signed by its radiologist through the reporting
    workflow (which queues the SR and the ORU^R01), then, demo data only, its
    ``signed_at`` moved back to when the story says it was signed."""
    for case in CASES:
        if case.reported_after_hours is None:
            continue
        study = STUDY_OF[case.accession]
        uid = _uid(case.accession)
        principal = _user(archive, case.reporter)
        reporting_worklist.claim(archive, principal, uid)
        text = (
            f"{study.description}.\n\nFindings: no acute abnormality demonstrated.\n\n"
            "Conclusion: normal study. (Synthetic demo report.)"
        )
        saved = reports.save(archive, principal, uid, action=case.signed_as, text=text)
        signed = now - (case.arrived_hours_ago - case.reported_after_hours) * HOUR
        with begin_write(archive.engine) as conn:
            conn.execute(
                update(report_rows)
                .where(report_rows.c.id == saved.pk)
                .values(created_at=signed, updated_at=signed, signed_at=signed)
            )


def _rota(archive: Archive, now: float) -> None:
    """Every demo radiologist on shift now (12 hours from two hours ago), unless they are."""
    on = {s.username for s in rota.shifts(archive, start=now, days=0) if s.on_at(now)}
    start = (now // HOUR - 2) * HOUR
    for username, trust in RADIOLOGISTS:
        if username not in on:
            rota.add_shift(
                archive,
                SYSTEM,
                username=username,
                trust=trust,
                subspecialty="",
                starts_at=start,
                ends_at=start + 12 * HOUR,
            )


def summary(archive: Archive) -> list[str]:
    """What the demo's reporting week holds, as the story has it when loaded."""
    waiting: dict[str, list[int]] = {code: [0, 0] for code in TRUSTS}
    for case in CASES:
        if case.reported_after_hours is not None:
            continue
        target = turnaround.target_seconds(archive.settings, case.priority or "outpatient")
        counts = waiting[STUDY_OF[case.accession].patient.issuer]
        counts[0] += 1
        counts[1] += case.arrived_hours_ago * HOUR > target
    ordered = sum(bool(c.priority) for c in CASES)
    each = ", ".join(f"{code} {n} ({late} overdue)" for code, (n, late) in waiting.items())
    return [
        f"demo workflow: {ordered} orders with their studies, {len(BOOKINGS)} booked ahead "
        "(Modality Worklist: findscu -W -k PatientName= -aet EMH_PACS -aec RIX "
        "127.0.0.1 11112)",
        f"  unreported: {each}; on the rota now: {', '.join(u for u, _ in RADIOLOGISTS)}",
        "  sign in as emh.radiologist: /worklist (EMH and NGH, shared), /turnaround, "
        "/rota; orders: /api/orders",
    ]


def load_workflow(archive: Archive, now: float | None = None) -> None:
    """Orders, a week of arrivals and reports (some late, some still waiting past their
    target) and a rota; the orders and history are made once, the rota kept current."""
    now = time.time() if now is None else now
    if _place_orders(archive, now):
        _backdate(archive, now)
        _sign_reports(archive, now)
    _rota(archive, now)


def load(archive: Archive, progress: Callable[[int], None] | None = None) -> int:
    """Store the demo region's images, each sent by its trust's PACS; returns how many
    instances were new. ``setup_region`` runs first, ``load_workflow`` last; with
    ``progress`` (the command line) it prints what to look at."""
    setup_region(archive)
    with archive.engine.connect() as conn:
        by_code = {t.code: t for t in trusts.all_trusts(conn)}
    stored = 0
    for ds in instances():
        trust = by_code[str(ds.IssuerOfPatientID)]
        received = received_from_file(
            encode(ds), source="demo", calling_ae=f"{trust.code}_PACS", trust=trust
        )
        result = ingest(archive, received)
        stored += result.outcome == "stored"
        if progress is not None:
            progress(1)
    load_workflow(archive)
    if progress is not None:
        print("\n".join(summary(archive)))
    return stored


def size() -> int:
    return sum(s.images for s in STUDIES)
