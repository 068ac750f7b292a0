"""The one ingest path: parse header → validate → store durably → index → answer.

C-STORE, STOW-RS, ``rix import`` and the portal's upload all call ``ingest``. It never
decodes pixel data, stores the received dataset bytes unchanged under a File Meta header
of its own, and returns only after the bytes are fsynced and the index committed
(DESIGN.md, "The path of an image"). A crash at any point leaves either nothing, or a
whole file that the next send of the same instance (or ``rix reindex``) indexes.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote, unquote

import structlog
from sqlalchemy import Connection

from rix import access, audit, uids
from rix.access import trail
from rix.archive import Archive
from rix.config import DuplicatePolicy
from rix.dataset import nhs, parsing
from rix.errors import (
    DuplicateRejected,
    InvalidInstance,
    SOPClassMismatch,
    StoreStatus,
    StudyMismatch,
)
from rix.index import records, write
from rix.index.verify import dataset_sha256
from rix.region.trusts import Trust
from rix.store import ObjectExists

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """A dataset as it arrived: encoded bytes without file meta, and how they are encoded."""

    dataset: bytes
    transfer_syntax: str
    calling_ae: str = ""
    source: str = "dimse"
    sop_class_uid: str = ""  # from the C-STORE command, checked against the dataset
    sop_instance_uid: str = ""
    study_uid: str = ""  # the study the request addressed (STOW-RS), checked likewise
    trust: Trust | None = None  # the sender's: its AE's trust, or the uploading user's
    # outside media: the local record the user chose for the dataset's patient
    reconciled: records.Reconciled | None = None


class Outcome(StrEnum):
    STORED = "stored"
    ALREADY_PRESENT = "already-present"
    KEPT_FIRST = "duplicate-kept-first"
    KEPT_LATEST = "duplicate-kept-latest"


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestResult:
    outcome: Outcome
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    patient: str = ""  # issuer/patient ID as indexed, for the audit trail
    nhs_number: str = ""
    reason: str = ""

    @property
    def status(self) -> StoreStatus:
        if self.outcome in (Outcome.KEPT_FIRST, Outcome.KEPT_LATEST):
            return StoreStatus.COERCION_OF_DATA_ELEMENTS  # the warning PS3.4 B.2.3 allows
        return StoreStatus.SUCCESS


@dataclass(frozen=True, slots=True, kw_only=True)
class _Identity:
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    patient: str
    nhs_number: str

    @property
    def key(self) -> str:
        return f"{self.study_uid}/{self.series_uid}/{self.sop_instance_uid}.dcm"


def identify(header: parsing.Header, received: Received) -> _Identity:
    """The four UIDs every stored object needs, valid and consistent with the command."""
    ds = header.dataset
    found = {
        keyword: uids.clean(parsing.text(ds, keyword))
        for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
    }
    for keyword, value in found.items():
        if not value:
            raise InvalidInstance(f"{keyword} is missing")
        if not uids.is_valid(value):
            raise InvalidInstance(f"{keyword} {value[:80]!r} is not a valid DICOM UID")
    if (
        received.sop_instance_uid
        and uids.clean(received.sop_instance_uid) != found["SOPInstanceUID"]
    ):
        raise InvalidInstance("SOPInstanceUID in the dataset differs from the C-STORE request")
    if received.study_uid and received.study_uid != found["StudyInstanceUID"]:
        raise StudyMismatch("Study Instance UID differs from the URL")
    if received.sop_class_uid and uids.clean(received.sop_class_uid) != found["SOPClassUID"]:
        raise SOPClassMismatch("SOPClassUID in the dataset differs from the C-STORE request")
    issuer = parsing.text(ds, "IssuerOfPatientID")
    if not issuer and received.trust is not None:
        issuer = received.trust.issuer
    patient = f"{issuer}/{parsing.text(ds, 'PatientID')}"
    nhs_number = nhs.in_dataset(ds).value[:16]
    if received.reconciled is not None:
        patient, nhs_number = received.reconciled.ref, received.reconciled.nhs_number[:16]
    return _Identity(
        sop_class_uid=found["SOPClassUID"],
        sop_instance_uid=found["SOPInstanceUID"],
        study_uid=found["StudyInstanceUID"],
        series_uid=found["SeriesInstanceUID"],
        patient=patient,
        nhs_number=nhs_number,
    )


def ingest(archive: Archive, received: Received) -> IngestResult:
    """Store and index one instance; raise a ``RixError`` carrying the answer on failure."""
    header = parsing.read_header(received.dataset, received.transfer_syntax)
    ident = identify(header, received)
    sha = hashlib.sha256(received.dataset).hexdigest()
    with archive.engine.connect() as conn:
        existing = write.find_instance(conn, ident.sop_instance_uid)
    if existing is not None:
        return _duplicate(archive, received, ident, existing, sha)
    meta = _file_meta(received, ident, header.transfer_syntax)
    data = meta + received.dataset
    key = ident.key
    try:
        archive.store.put(key, data)
    except ObjectExists:
        key = _claim_existing_object(archive, ident, sha, data)
    record = records.InstanceRecord.from_header(
        header.dataset,
        transfer_syntax=header.transfer_syntax,
        size=len(data),
        sha256=sha,
        storage_key=key,
        calling_ae=received.calling_ae,
        pixel_data_offset=_in_file(len(meta), header.pixel_data_offset),
        trust=received.trust,
        nhs_number=ident.nhs_number,
        reconciled=received.reconciled,
    )
    added = archive.writer.add_instance(record)
    if added.existing is not None:  # a concurrent association stored it first
        return _duplicate(archive, received, ident, added.existing, sha)
    return _result(Outcome.STORED, ident)


def _file_meta(received: Received, ident: _Identity, transfer_syntax: str) -> bytes:
    """The File Meta Information rix stores before the received bytes (PS3.10 7.1): the
    instance's UIDs, the sender's AE and, privately, its owner (``owner_information``)."""
    return parsing.file_meta(
        sop_class_uid=ident.sop_class_uid,
        sop_instance_uid=ident.sop_instance_uid,
        transfer_syntax=transfer_syntax,
        source_ae=received.calling_ae,
        private=owner_information(received.trust, received.reconciled),
    )


def owner_information(trust: Trust | None, reconciled: records.Reconciled | None = None) -> bytes:
    """The owning trust, and the local record outside media were reconciled to, kept in
    the stored file's meta for ``rix reindex``: ``key=value`` lines, values URL-quoted."""
    fields: dict[str, str] = {}
    if trust is not None:
        fields["trust"] = trust.code
    if reconciled is not None:
        fields.update(
            patient_issuer=reconciled.issuer,
            patient_id=reconciled.patient_id,
            name=reconciled.name,
            birth_date=reconciled.birth_date,
            sex=reconciled.sex,
            nhs_number=reconciled.nhs_number,
            upload=reconciled.upload,
            by=reconciled.by,
            at=repr(reconciled.at),
        )
    return "\n".join(f"{k}={quote(v, safe='')}" for k, v in fields.items()).encode("ascii")


def _owner_fields(private: bytes) -> dict[str, str]:
    fields = {}
    for line in private.decode("ascii", "replace").split("\n"):
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = unquote(value)
    return fields


def owner_code(private: bytes) -> str:
    """The trust code ``owner_information`` wrote, or ''."""
    return _owner_fields(private).get("trust", "")


def reconciled_in(private: bytes) -> records.Reconciled | None:
    """The reconciled local record ``owner_information`` wrote, if any."""
    fields = _owner_fields(private)
    if "upload" not in fields or "patient_id" not in fields:
        return None
    try:
        at = float(fields.get("at", "0"))
    except ValueError:
        at = 0.0
    return records.Reconciled(
        patient_id=fields["patient_id"],
        issuer=fields.get("patient_issuer", ""),
        name=fields.get("name", ""),
        birth_date=fields.get("birth_date", ""),
        sex=fields.get("sex", ""),
        nhs_number=fields.get("nhs_number", ""),
        upload=fields["upload"],
        by=fields.get("by", ""),
        at=at,
    )


def _in_file(meta_length: int, offset: int | None) -> int | None:
    return None if offset is None else meta_length + offset


def _claim_existing_object(archive: Archive, ident: _Identity, sha: str, data: bytes) -> str:
    """The object's key is taken but the index does not know the instance.

    Either a concurrent store of the same instance is being indexed, or an earlier store
    crashed after its bytes were durable but before the index commit (never acknowledged).
    Same bytes: index that file. Different bytes: keep both, this one under a new key.
    """
    if dataset_sha256(archive.store, ident.key) == sha:
        return ident.key
    key = conflict_key(ident.sop_instance_uid, sha)
    with contextlib.suppress(ObjectExists):
        archive.store.put(key, data)
    return key


def conflict_key(sop_uid: str, sha: str) -> str:
    return f"conflicts/{sop_uid}/{sha}.dcm"


def _duplicate(
    archive: Archive,
    received: Received,
    ident: _Identity,
    existing: write.Existing,
    sha: str,
) -> IngestResult:
    """Same SOP Instance UID again: identical bytes are a plain success, others a conflict."""
    if existing.sha256 == sha:
        return _result(Outcome.ALREADY_PRESENT, ident)
    policy = archive.settings.duplicate_policy
    header_ts = received.transfer_syntax
    data = _file_meta(received, ident, header_ts) + received.dataset
    key = conflict_key(ident.sop_instance_uid, sha)
    with contextlib.suppress(ObjectExists):  # this very copy was received and kept before
        archive.store.put(key, data)
    reason = (
        f"already stored with different content; {policy.value} policy; "
        f"SOP Instance UID {ident.sop_instance_uid}"
    )

    def record_conflict(conn: Connection) -> None:
        if policy is DuplicatePolicy.KEEP_LATEST:
            write.add_conflict(
                conn,
                sop_uid=ident.sop_instance_uid,
                storage_key=existing.storage_key,
                sha256=existing.sha256,
                size=existing.size,
                calling_ae="",
                policy=policy.value,
                reason="superseded by a later copy",
            )
            write.make_current(
                conn,
                sop_uid=ident.sop_instance_uid,
                storage_key=key,
                sha256=sha,
                size=len(data),
                ts=header_ts,
            )
        else:
            write.add_conflict(
                conn,
                sop_uid=ident.sop_instance_uid,
                storage_key=key,
                sha256=sha,
                size=len(data),
                calling_ae=received.calling_ae,
                policy=policy.value,
                reason=reason,
            )
        trail.record_in(
            conn,
            access.Principal.of_ae(received.calling_ae, received.trust, received.source),
            audit.Kind.STORE_DUPLICATE,
            audit.Outcome.REFUSED if policy is DuplicatePolicy.REJECT else audit.Outcome.WARNING,
            trail.Touched(
                study_uid=existing.study_uid, patient=ident.patient, nhs_number=ident.nhs_number
            ),
            {"sop_instance_uid": ident.sop_instance_uid, "policy": policy.value, "kept_key": key},
        )

    archive.writer.submit(record_conflict)
    log.warning(
        "duplicate instance with different content", policy=policy.value, source=received.source
    )
    if policy is DuplicatePolicy.REJECT:
        raise DuplicateRejected(reason + "; the new copy was kept for review, not indexed")
    outcome = Outcome.KEPT_LATEST if policy is DuplicatePolicy.KEEP_LATEST else Outcome.KEPT_FIRST
    return _result(outcome, ident, reason)


def _result(outcome: Outcome, ident: _Identity, reason: str = "") -> IngestResult:
    return IngestResult(
        outcome=outcome,
        sop_class_uid=ident.sop_class_uid,
        sop_instance_uid=ident.sop_instance_uid,
        study_uid=ident.study_uid,
        series_uid=ident.series_uid,
        patient=ident.patient,
        nhs_number=ident.nhs_number,
        reason=reason,
    )


def received_from_file(
    data: bytes, *, source: str = "import", calling_ae: str = "", trust: Trust | None = None
) -> Received:
    """A Part 10 file (or bare dataset) as a ``Received``: the dataset bytes as in the file."""
    split = parsing.split_file(data)
    return Received(
        dataset=data[split.dataset_offset :],
        transfer_syntax=split.transfer_syntax,
        calling_ae=calling_ae,
        source=source,
        trust=trust,
    )
