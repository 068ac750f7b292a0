"""Synthetic header values: invented people, realistic studies.

Every name, ID and description here is made up. The mix is chosen so the benchmark's
C-FIND queries select what they would on a real archive: a surname prefix (``SMI*``)
matches a few percent of patients, one year of study dates about a tenth of studies,
``ModalitiesInStudy=MR`` about a quarter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

SURNAMES = (
    "SMITH", "SMILEY", "SMIRNOVA", "JONES", "TAYLOR", "BROWN", "WILLIAMS", "WILSON", "EVANS",
    "THOMAS", "JOHNSON", "ROBERTS", "WALKER", "WRIGHT", "THOMPSON", "WHITE", "HUGHES", "EDWARDS",
    "GREEN", "HALL", "WOOD", "HARRIS", "LEWIS", "MARTIN", "JACKSON", "CLARKE", "CLARK", "TURNER",
    "HILL", "SCOTT", "COOPER", "MORRIS", "WARD", "MOORE", "KING", "WATSON", "BAKER", "HARRISON",
    "MORGAN", "PATEL", "YOUNG", "ALLEN", "MITCHELL", "JAMES", "ANDERSON", "PHILLIPS", "LEE",
    "BELL", "PARKER", "DAVIS", "OKAFOR", "NOWAK", "KOWALSKI", "MURPHY", "KELLY", "NGUYEN",
)  # fmt: skip
GIVEN_NAMES = (
    "OLIVER", "AMELIA", "GEORGE", "ISLA", "HARRY", "AVA", "NOAH", "MIA", "JACK", "IVY", "LEO",
    "LILY", "ARTHUR", "ISABELLA", "MUHAMMAD", "ROSIE", "OSCAR", "SOPHIA", "CHARLIE", "GRACE",
    "JACOB", "FREYA", "THOMAS", "EVIE", "HENRY", "ELLA", "WILLIAM", "FLORENCE", "ALFIE", "POPPY",
    "MARGARET", "JOAN", "PETER", "SUSAN", "DAVID", "ANNE", "JOHN", "MARY", "ROBERT", "PATRICIA",
)  # fmt: skip
ISSUERS = ("NORTHGATE-TRUST", "RIVERSIDE-TRUST", "HILLCREST-TRUST")
INSTITUTIONS = ("Northgate General", "Riverside Royal Infirmary", "Hillcrest Community Hospital")
REFERRERS = ("AVERY^JOANNA^^DR", "BISHOP^MARK^^DR", "CHAUHAN^PRIYA^^DR", "DOYLE^SEAN^^DR")


@dataclass(frozen=True, slots=True, kw_only=True)
class Modality:
    """How one modality's small instances look: SOP class, matrix, pixel depth, wording."""

    code: str
    sop_class_uid: str
    size: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    weight: float
    descriptions: tuple[tuple[str, str], ...]  # (study description, body part)


MODALITIES = (
    Modality(
        code="CT", sop_class_uid="1.2.840.10008.5.1.4.1.1.2", size=128, bits_allocated=16,
        bits_stored=12, signed=True, weight=0.30,
        descriptions=(("CT HEAD WITHOUT CONTRAST", "HEAD"), ("CT CHEST ABDOMEN PELVIS", "CHEST"),
                      ("CT PULMONARY ANGIOGRAM", "CHEST"), ("CT ABDOMEN", "ABDOMEN")),
    ),
    Modality(
        code="MR", sop_class_uid="1.2.840.10008.5.1.4.1.1.4", size=64, bits_allocated=16,
        bits_stored=12, signed=False, weight=0.25,
        descriptions=(("MR BRAIN WITH CONTRAST", "BRAIN"), ("MR LUMBAR SPINE", "LSPINE"),
                      ("MR KNEE LEFT", "KNEE"), ("MR PROSTATE", "PELVIS")),
    ),
    Modality(
        code="CR", sop_class_uid="1.2.840.10008.5.1.4.1.1.1", size=128, bits_allocated=16,
        bits_stored=12, signed=False, weight=0.30,
        descriptions=(("XR CHEST PA AND LATERAL", "CHEST"), ("XR HAND RIGHT", "HAND"),
                      ("XR PELVIS AP", "PELVIS"), ("XR ANKLE LEFT", "ANKLE")),
    ),
    Modality(
        code="US", sop_class_uid="1.2.840.10008.5.1.4.1.1.6.1", size=64, bits_allocated=8,
        bits_stored=8, signed=False, weight=0.15,
        descriptions=(("US ABDOMEN COMPLETE", "ABDOMEN"), ("US THYROID", "NECK"),
                      ("US RENAL TRACT", "KIDNEY")),
    ),
)  # fmt: skip

FIRST_STUDY_DATE = date(2015, 1, 1)
LAST_STUDY_DATE = date(2024, 12, 31)


@dataclass(frozen=True, slots=True, kw_only=True)
class Patient:
    patient_id: str
    issuer: str
    name: str
    birth_date: str
    sex: str


def patient(rng: random.Random, number: int) -> Patient:
    born = date(1930, 1, 1) + timedelta(days=rng.randrange(85 * 365))
    return Patient(
        patient_id=f"BP{number:06d}",
        issuer=rng.choice(ISSUERS),
        name=f"{rng.choice(SURNAMES)}^{rng.choice(GIVEN_NAMES)}",
        birth_date=born.strftime("%Y%m%d"),
        sex=rng.choice("MF"),
    )


def study_date(rng: random.Random) -> date:
    span = (LAST_STUDY_DATE - FIRST_STUDY_DATE).days
    return FIRST_STUDY_DATE + timedelta(days=rng.randrange(span))


def study_time(rng: random.Random) -> str:
    return f"{rng.randrange(7, 20):02d}{rng.randrange(60):02d}{rng.randrange(60):02d}"


def modality(rng: random.Random) -> Modality:
    return rng.choices(MODALITIES, weights=[m.weight for m in MODALITIES])[0]


def age(birth_date: str, on: date) -> str:
    """Patient's Age (AS), e.g. ``067Y`` (PS3.5 6.2)."""
    born = date(int(birth_date[:4]), int(birth_date[4:6]), int(birth_date[6:]))
    return f"{max(0, (on - born).days // 365):03d}Y"
