"""Storage SCP (PS3.4 Annex B): every C-STORE goes through the one ingest path."""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pynetdicom.events import Event

from rix.access.checks import require_store
from rix.access.trail import StoreTally
from rix.archive import Archive
from rix.dicom.principal import principal_of
from rix.dicom.status import attempt, status
from rix.errors import StoreStatus
from rix.ingest import Received, ingest


def even_length(dataset: bytes, transfer_syntax: str) -> bytes:
    """A deflated Data Set ends padded to even length with one NUL (PS3.5 A.5).

    Some senders (pynetdicom sending a file's bytes) leave the pad out; DCMTK then aborts
    the association when rix sends the instance on ("Odd Fragment Length"), so the pad
    is added once, here, and the stored object is the valid form of what was received.
    """
    if transfer_syntax == DeflatedExplicitVRLittleEndian and len(dataset) % 2:
        return dataset + b"\x00"
    return dataset


def handle_store(event: Event, archive: Archive) -> Dataset:
    request: Any = event.request
    transfer_syntax = str(event.context.transfer_syntax)
    principal = principal_of(event)
    received = Received(
        dataset=even_length(request.DataSet.getvalue(), transfer_syntax),
        transfer_syntax=transfer_syntax,
        calling_ae=event.assoc.requestor.ae_title.strip(),
        source="dimse",
        sop_class_uid=str(request.AffectedSOPClassUID or ""),
        sop_instance_uid=str(request.AffectedSOPInstanceUID or ""),
        trust=principal.trust,
    )
    tally = _tally(event)
    with attempt("c-store", StoreStatus.PROCESSING_FAILURE) as attempted:
        require_store(principal)
        result = ingest(archive, received)
    if attempted.failure is not None:
        tally.failed(attempted.reason)
        return attempted.failure
    tally.stored(result)
    return status(result.status, result.reason)


def _tally(event: Event) -> StoreTally:
    assoc: Any = event.assoc
    tally: StoreTally | None = getattr(assoc, "rix_stored", None)
    if tally is None:
        tally = assoc.rix_stored = StoreTally()
    return tally


def audit_association(event: Event, archive: Archive) -> None:
    """EVT_RELEASED / EVT_ABORTED: one store event per study the association sent
    (the DICOM "Instances Transferred" audit message of PS3.15 A.5 is per study)."""
    tally: StoreTally | None = getattr(event.assoc, "rix_stored", None)
    if tally is None:
        return
    tally.record(archive.writer.submit, principal_of(event))
