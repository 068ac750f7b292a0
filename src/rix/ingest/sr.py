"""Text written about a study (a report, an addendum, a second opinion), stored in the
study as a DICOM Basic Text SR.

An SR is how any PACS, viewer or the next archive finds the words beside the images: OHIF
lists it with the study's series, C-FIND and QIDO answer it, and it leaves with the study
on every transfer. It is built from the index (the study's stored identity, so it files
under the same patient record, reconciled or not) and stored through the one ingest path
as the study's trust, like any instance that arrives.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid
from sqlalchemy import Connection, select

from rix.archive import Archive
from rix.errors import NotFound
from rix.index.schema import patients, studies, trusts
from rix.ingest import IngestResult, ingest, received_from_file
from rix.region.trusts import get_trust

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
SERIES_NUMBER = 9901  # after what modalities number; reports sort last in a viewer
REPORT_TITLE = ("18748-4", "LN", "Diagnostic imaging report")
OPINION_TITLE = ("11488-4", "LN", "Consult note")
FINDING = ("121071", "DCM", "Finding")


@dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    """An instance the SR points at (a key image, the report version it follows), by
    class, instance and series."""

    sop_class_uid: str
    sop_instance_uid: str
    series_uid: str


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def study_header(conn: Connection, study_uid: str) -> Dataset:
    """Patient and General Study modules as the index holds them."""
    row = conn.execute(
        select(studies, patients.c.patient_id, patients.c.issuer, patients.c.patient_name)
        .add_columns(patients.c.birth_date, patients.c.sex)
        .join(patients, patients.c.id == studies.c.patient_pk)
        .where(studies.c.study_uid == study_uid)
    ).first()
    if row is None:
        raise NotFound("no such study")
    ds = Dataset()
    ds.PatientName = row.patient_name
    ds.PatientID = row.patient_id
    ds.IssuerOfPatientID = row.issuer
    ds.PatientBirthDate = row.birth_date
    ds.PatientSex = row.sex
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = row.study_date
    ds.StudyTime = row.study_time
    ds.AccessionNumber = row.accession_number
    ds.StudyID = row.study_id
    ds.ReferringPhysicianName = row.referring_physician_name
    ds.StudyDescription = row.study_description
    return ds


def text_document(
    conn: Connection,
    *,
    study_uid: str,
    text: str,
    author: str,
    organisation: str,
    final: bool,
    series_description: str,
    title: tuple[str, str, str] = REPORT_TITLE,
    key_images: Sequence[Reference] = (),
    sop_instance_uid: str = "",
    predecessors: Sequence[Reference] = (),
) -> Dataset:
    """A Basic Text SR in ``study_uid``: ``text`` as one finding, each key image
    referenced. ``final`` marks it COMPLETE and VERIFIED by ``author`` (a signed report);
    otherwise PARTIAL and UNVERIFIED (preliminary, an outside opinion). A caller that
    may build it twice (a retried job) passes the ``sop_instance_uid`` it chose once; an
    addendum or correction names the stored version it follows (``predecessors``: PS3.3
    C.17.2, Predecessor Documents Sequence), so a PACS shows them as one report's history."""
    ds = study_header(conn, study_uid)
    now = time.gmtime()
    date, clock = time.strftime("%Y%m%d", now), time.strftime("%H%M%S", now)
    ds.SOPClassUID = BASIC_TEXT_SR
    ds.SOPInstanceUID = sop_instance_uid or generate_uid()
    ds.Modality = "SR"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = SERIES_NUMBER
    ds.SeriesDescription = series_description[:64]
    ds.InstanceNumber = 1
    ds.Manufacturer = "rix"
    ds.ReferencedPerformedProcedureStepSequence = DicomSequence()
    ds.PerformedProcedureCodeSequence = DicomSequence()
    ds.ContentDate, ds.ContentTime = date, clock
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, clock
    ds.CompletionFlag = "COMPLETE" if final else "PARTIAL"
    ds.VerificationFlag = "VERIFIED" if final else "UNVERIFIED"
    ds.PreliminaryFlag = "FINAL" if final else "PRELIMINARY"
    observer = Dataset()
    observer.ObserverType = "PSN"
    observer.PersonName = author
    observer.InstitutionName = organisation
    ds.AuthorObserverSequence = DicomSequence([observer])
    if final:
        verifier = Dataset()
        verifier.VerifyingObserverName = author
        verifier.VerifyingOrganization = organisation
        verifier.VerificationDateTime = date + clock
        verifier.VerifyingObserverIdentificationCodeSequence = DicomSequence()
        ds.VerifyingObserverSequence = DicomSequence([verifier])
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = DicomSequence([_code(*title)])
    finding = Dataset()
    finding.RelationshipType = "CONTAINS"
    finding.ValueType = "TEXT"
    finding.ConceptNameCodeSequence = DicomSequence([_code(*FINDING)])
    finding.TextValue = text
    content = [finding]
    for image in key_images:
        content.append(_image_item(image))
    ds.ContentSequence = DicomSequence(content)
    if key_images:
        ds.CurrentRequestedProcedureEvidenceSequence = _evidence(study_uid, key_images)
    if predecessors:
        ds.PredecessorDocumentsSequence = _evidence(study_uid, predecessors)
    return ds


def _image_item(image: Reference) -> Dataset:
    reference = Dataset()
    reference.ReferencedSOPClassUID = image.sop_class_uid
    reference.ReferencedSOPInstanceUID = image.sop_instance_uid
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "IMAGE"  # PS3.3 C.17.3: an IMAGE item needs no concept name
    item.ReferencedSOPSequence = DicomSequence([reference])
    return item


def _evidence(study_uid: str, key_images: Sequence[Reference]) -> DicomSequence:
    """Hierarchical SOP references (PS3.3 C.17.2.1): study, then series, then images."""
    by_series: dict[str, list[Reference]] = {}
    for image in key_images:
        by_series.setdefault(image.series_uid, []).append(image)
    series_items = []
    for series_uid, images in by_series.items():
        series = Dataset()
        series.SeriesInstanceUID = series_uid
        refs = []
        for image in images:
            ref = Dataset()
            ref.ReferencedSOPClassUID = image.sop_class_uid
            ref.ReferencedSOPInstanceUID = image.sop_instance_uid
            refs.append(ref)
        series.ReferencedSOPSequence = DicomSequence(refs)
        series_items.append(series)
    study = Dataset()
    study.StudyInstanceUID = study_uid
    study.ReferencedSeriesSequence = DicomSequence(series_items)
    return DicomSequence([study])


def encode(ds: Dataset) -> bytes:
    """Part 10 bytes, explicit VR little endian."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def store(archive: Archive, ds: Dataset, *, source: str) -> IngestResult:
    """Store ``ds`` through the one ingest path as its study's trust (the owner of what is
    written about its images), durable and indexed before this returns."""
    with archive.engine.connect() as conn:
        code = conn.execute(
            select(trusts.c.code)
            .join(studies, studies.c.trust_pk == trusts.c.id)
            .where(studies.c.study_uid == ds.StudyInstanceUID)
        ).scalar()
        trust = None if code is None else get_trust(conn, code)
    return ingest(archive, received_from_file(encode(ds), source=source, trust=trust))
