"""The attributes users search on, per query level (PS3.4 C.6.1.1 and C.6.2.1).

One table maps each DICOM keyword to its level and index column. Ingest uses it to fill
the index; C-FIND (and later QIDO) use it to turn identifiers into SQL. An attribute
not listed here is returned empty when asked for, as PS3.4 C.2.2.1.2 allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydicom.datadict import tag_for_keyword


class Level(StrEnum):
    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"


LEVEL_ORDER = (Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE)


@dataclass(frozen=True, slots=True, kw_only=True)
class Attribute:
    keyword: str
    vr: str
    level: Level
    column: str
    derived: bool = False  # computed by the index (counts, ModalitiesInStudy), not read
    multi: bool = False  # value is a list stored backslash-joined

    @property
    def table(self) -> str:
        return TABLE_OF_LEVEL[self.level]

    @property
    def tag(self) -> int:
        return TAGS[self.keyword]


TABLE_OF_LEVEL = {
    Level.PATIENT: "patients",
    Level.STUDY: "studies",
    Level.SERIES: "series",
    Level.IMAGE: "instances",
}

UNIQUE_KEY = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.IMAGE: "SOPInstanceUID",
}


def _a(level: Level, keyword: str, vr: str, column: str, **kw: bool) -> Attribute:
    return Attribute(keyword=keyword, vr=vr, level=level, column=column, **kw)


P, ST, SE, IM = Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE

ATTRIBUTES: tuple[Attribute, ...] = (
    _a(P, "PatientID", "LO", "patient_id"),
    _a(P, "IssuerOfPatientID", "LO", "issuer"),
    _a(P, "PatientName", "PN", "patient_name"),
    _a(P, "PatientBirthDate", "DA", "birth_date"),
    _a(P, "PatientBirthTime", "TM", "birth_time"),
    _a(P, "PatientSex", "CS", "sex"),
    _a(P, "OtherPatientIDs", "LO", "other_patient_ids", multi=True),
    _a(P, "NumberOfPatientRelatedStudies", "IS", "num_studies", derived=True),
    _a(P, "NumberOfPatientRelatedSeries", "IS", "num_series", derived=True),
    _a(P, "NumberOfPatientRelatedInstances", "IS", "num_instances", derived=True),
    _a(ST, "StudyInstanceUID", "UI", "study_uid"),
    _a(ST, "StudyDate", "DA", "study_date"),
    _a(ST, "StudyTime", "TM", "study_time"),
    _a(ST, "AccessionNumber", "SH", "accession_number"),
    _a(ST, "StudyID", "SH", "study_id"),
    _a(ST, "StudyDescription", "LO", "study_description"),
    _a(ST, "ReferringPhysicianName", "PN", "referring_physician_name"),
    _a(ST, "PatientAge", "AS", "patient_age"),
    _a(ST, "ModalitiesInStudy", "CS", "modalities", derived=True, multi=True),
    _a(ST, "SOPClassesInStudy", "UI", "sop_classes", derived=True, multi=True),
    _a(ST, "NumberOfStudyRelatedSeries", "IS", "num_series", derived=True),
    _a(ST, "NumberOfStudyRelatedInstances", "IS", "num_instances", derived=True),
    _a(SE, "SeriesInstanceUID", "UI", "series_uid"),
    _a(SE, "Modality", "CS", "modality"),
    _a(SE, "SeriesNumber", "IS", "series_number"),
    _a(SE, "SeriesDescription", "LO", "series_description"),
    _a(SE, "SeriesDate", "DA", "series_date"),
    _a(SE, "SeriesTime", "TM", "series_time"),
    _a(SE, "BodyPartExamined", "CS", "body_part"),
    _a(SE, "Laterality", "CS", "laterality"),
    _a(SE, "ProtocolName", "LO", "protocol_name"),
    _a(SE, "StationName", "SH", "station_name"),
    _a(SE, "InstitutionName", "LO", "institution_name"),
    _a(SE, "PerformedProcedureStepStartDate", "DA", "pps_start_date"),
    _a(SE, "PerformedProcedureStepStartTime", "TM", "pps_start_time"),
    _a(SE, "NumberOfSeriesRelatedInstances", "IS", "num_instances", derived=True),
    _a(IM, "SOPInstanceUID", "UI", "sop_uid"),
    _a(IM, "SOPClassUID", "UI", "sop_class_uid"),
    _a(IM, "InstanceNumber", "IS", "instance_number"),
    _a(IM, "ContentDate", "DA", "content_date"),
    _a(IM, "ContentTime", "TM", "content_time"),
    _a(IM, "AcquisitionDateTime", "DT", "acquisition_datetime"),
    _a(IM, "NumberOfFrames", "IS", "number_of_frames"),
    _a(IM, "Rows", "US", "rows"),
    _a(IM, "Columns", "US", "columns"),
)

BY_KEYWORD: dict[str, Attribute] = {a.keyword: a for a in ATTRIBUTES}
TAGS: dict[str, int] = {a.keyword: int(tag_for_keyword(a.keyword) or 0) for a in ATTRIBUTES}


def stored_attributes(level: Level) -> tuple[Attribute, ...]:
    """Attributes of ``level`` read from the instance at ingest."""
    return tuple(a for a in ATTRIBUTES if a.level == level and not a.derived)
