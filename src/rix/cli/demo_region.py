"""The demo region's people and images: three trusts with their PACS AE titles and users,
patients (one of them at two trusts, one with conflicting demographics for the MPI's review
list) and their CT, MR, CR and US studies.

Everything is generated (names, numbers, pixels); UIDs are derived deterministically so
loading the demo twice stores nothing twice. Never real patient data.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from rix.access import SYSTEM
from rix.admin import region as admin
from rix.archive import Archive
from rix.auth.users import parse_roles
from rix.region import aes

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


def demo_uid(*parts: object) -> str:
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
    ds.SOPInstanceUID = demo_uid(study.accession, index)
    ds.StudyInstanceUID = demo_uid(study.accession)
    ds.SeriesInstanceUID = demo_uid(study.accession, "series")
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
