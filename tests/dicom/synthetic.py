"""Synthetic patients for query tests: small, controlled, never real people.

Seven studies of six patients, with names in ASCII, ISO_IR 100 and ISO_IR 192, dates and
times chosen so each range of PS3.4 C.2.2.2.5 selects a known subset. UIDs are derived
from fixed names, so every answer can be asserted exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

SOP_CLASS = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "SR": "1.2.840.10008.5.1.4.1.1.88.11",
}


def uid(*parts: str) -> str:
    return str(generate_uid(entropy_srcs=["rix-synthetic", *parts]))


@dataclass(frozen=True, slots=True, kw_only=True)
class Patient:
    id: str
    name: str
    birth_date: str
    sex: str
    charset: str = ""  # Specific Character Set; '' is the default repertoire
    other_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Study:
    key: str
    patient: Patient
    date: str
    time: str
    accession: str
    description: str
    series: tuple[tuple[str, int], ...]  # (modality, number of instances)

    @property
    def uid(self) -> str:
        return uid(self.key)

    def series_uid(self, index: int) -> str:
        return uid(self.key, "series", str(index))

    def instance_uid(self, series_index: int, number: int) -> str:
        return uid(self.key, "series", str(series_index), "instance", str(number))

    @property
    def modalities(self) -> list[str]:
        return sorted({modality for modality, _n in self.series})

    @property
    def instance_count(self) -> int:
        return sum(n for _m, n in self.series)


DOE_JOHN = Patient(
    id="SYN-001", name="Doe^John", birth_date="19700101", sex="M", other_ids=("OTHER-A", "OTHER-B")
)
DOE_JANE = Patient(id="SYN-002", name="Doe^Jane", birth_date="19800515", sex="F")
SMITH = Patient(
    id="SYN-003", name="Smith^Anna", birth_date="19900220", sex="F", other_ids=("OTHER-C",)
)
BUC = Patient(id="SYN-004", name="Buc^Jérôme", birth_date="19651111", sex="M", charset="ISO_IR 100")
GREEK = Patient(
    id="SYN-005", name="Διονυσιος^Γιαννης", birth_date="19750303", sex="M", charset="ISO_IR 192"
)
JAPANESE = Patient(
    id="SYN-006", name="山田^太郎", birth_date="19851224", sex="M", charset="ISO_IR 192"
)
PATIENTS = (DOE_JOHN, DOE_JANE, SMITH, BUC, GREEK, JAPANESE)
# For studies other tests make and change (deleted or altered files): kept out of the
# SYN-* patients that query tests count.
AUX = Patient(id="AUX-001", name="Aux^Patient", birth_date="20000101", sex="O")

S1 = Study(
    key="S1",
    patient=DOE_JOHN,
    date="20240110",
    time="083000",
    accession="ACC-001",
    description="CT HEAD",
    series=(("CT", 3), ("SR", 1)),
)
S2 = Study(
    key="S2",
    patient=DOE_JOHN,
    date="20240215",
    time="141500",
    accession="ACC-002",
    description="MR KNEE",
    series=(("MR", 2),),
)
S3 = Study(
    key="S3",
    patient=DOE_JANE,
    date="20231231",
    time="235959",
    accession="ACC-003",
    description="CT CHEST",
    series=(("CT", 2),),
)
S4 = Study(
    key="S4",
    patient=SMITH,
    date="20240301",
    time="120000.5",
    accession="ACC-004",
    description="US ABDOMEN",
    series=(("US", 1),),
)
S5 = Study(
    key="S5",
    patient=BUC,
    date="20240110",
    time="101010",
    accession="ACC-005",
    description="CT ABDOMEN",
    series=(("CT", 1),),
)
S6 = Study(
    key="S6",
    patient=GREEK,
    date="20240405",
    time="090000",
    accession="ACC-006",
    description="MR BRAIN",
    series=(("MR", 1),),
)
S7 = Study(
    key="S7",
    patient=JAPANESE,
    date="20240406",
    time="091500",
    accession="ACC-007",
    description="CR CHEST",
    series=(("CR", 1),),
)
STUDIES = (S1, S2, S3, S4, S5, S6, S7)


def patient_studies(patient: Patient) -> list[Study]:
    return [s for s in STUDIES if s.patient is patient]


def instance(study: Study, series_index: int, number: int) -> Dataset:
    modality, _count = study.series[series_index]
    p = study.patient
    ds = Dataset()
    if p.charset:
        ds.SpecificCharacterSet = p.charset
    ds.SOPClassUID = SOP_CLASS[modality]
    ds.SOPInstanceUID = study.instance_uid(series_index, number)
    ds.StudyDate = ds.ContentDate = study.date
    ds.StudyTime = ds.ContentTime = study.time
    ds.AccessionNumber = study.accession
    ds.Modality = modality
    ds.ReferringPhysicianName = "Ref^Doctor"
    ds.StudyDescription = study.description
    ds.SeriesDescription = f"{study.description} {modality}"
    ds.PatientName = p.name
    ds.PatientID = p.id
    ds.PatientBirthDate = p.birth_date
    ds.PatientSex = p.sex
    if p.other_ids:
        ds.OtherPatientIDsSequence = Sequence([_other_id(i) for i in p.other_ids])
    ds.StudyInstanceUID = study.uid
    ds.SeriesInstanceUID = study.series_uid(series_index)
    ds.StudyID = study.key
    ds.SeriesNumber = series_index + 1
    ds.InstanceNumber = number
    if modality != "SR":
        ds.Rows, ds.Columns = 512, 256 + number  # image attributes without the pixels
    return ds


def _other_id(patient_id: str) -> Dataset:
    item = Dataset()
    item.PatientID = patient_id
    item.IssuerOfPatientID = "OTHER-HOSPITAL"
    return item


def instances(study: Study) -> list[Dataset]:
    return [
        instance(study, index, number)
        for index, (_modality, count) in enumerate(study.series)
        for number in range(1, count + 1)
    ]
