"""Storage Commitment Push Model SCP (PS3.4 J.3).

An instance is reported committed only after its stored bytes are re-read and their
SHA-256 matches the index; anything missing or damaged goes in the Failed SOP Sequence.
The N-EVENT-REPORT goes back on the same association when it is still open, else on a
new association to the requester's registered AE (PS3.4 J.3.3).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom import AE, build_context, build_role, evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from sqlalchemy import select

from rix.archive import Archive
from rix.dicom.status import GeneralStatus, attempt
from rix.index.schema import instances
from rix.index.verify import dataset_sha256
from rix.region import aes
from rix.retrieve.network import set_nodelay

log = structlog.get_logger(__name__)

STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
REQUEST = 1  # Action Type ID: Request Storage Commitment (PS3.4 J.3.2)
ALL_COMMITTED, FAILURES_EXIST = 1, 2  # Event Type IDs of the report (PS3.4 J.3.3)


def verify_reference(archive: Archive, sop_class: str, sop_uid: str) -> GeneralStatus | None:
    """None when committed; otherwise the Failure Reason (PS3.4 J.3.2.1.1.2)."""
    with archive.engine.connect() as conn:
        row = conn.execute(
            select(instances.c.storage_key, instances.c.sha256, instances.c.sop_class_uid).where(
                instances.c.sop_uid == sop_uid
            )
        ).first()
    if row is None:
        return GeneralStatus.NO_SUCH_OBJECT_INSTANCE
    if row.sop_class_uid != sop_class:
        return GeneralStatus.CLASS_INSTANCE_CONFLICT
    try:
        stored = dataset_sha256(archive.store, row.storage_key)
    except Exception:  # missing or unreadable bytes are not committed
        return GeneralStatus.PROCESSING_FAILURE
    return None if stored == row.sha256 else GeneralStatus.PROCESSING_FAILURE


def commitment_report(archive: Archive, request: Dataset) -> tuple[int, Dataset]:
    """(event type, Event Information) for an N-ACTION's Referenced SOP Sequence."""
    report = Dataset()
    report.TransactionUID = request.TransactionUID
    committed, failed = [], []
    for ref in request.get("ReferencedSOPSequence", []):
        item = Dataset()
        item.ReferencedSOPClassUID = ref.ReferencedSOPClassUID
        item.ReferencedSOPInstanceUID = ref.ReferencedSOPInstanceUID
        reason = verify_reference(
            archive, str(ref.ReferencedSOPClassUID), str(ref.ReferencedSOPInstanceUID)
        )
        if reason is None:
            committed.append(item)
        else:
            item.FailureReason = int(reason)
            failed.append(item)
    report.RetrieveAETitle = archive.settings.ae_title
    if committed:
        report.ReferencedSOPSequence = Sequence(committed)
    if failed:
        report.FailedSOPSequence = Sequence(failed)
    return (FAILURES_EXIST if failed else ALL_COMMITTED), report


def handle_action(event: Event, archive: Archive) -> tuple[int | Dataset, Dataset | None]:
    action: Any = event.request
    if action.ActionTypeID != REQUEST:
        return GeneralStatus.NO_SUCH_ACTION_TYPE, None
    request = event.action_information
    if "TransactionUID" not in request:
        return GeneralStatus.MISSING_ATTRIBUTE, None
    with attempt("storage commitment", GeneralStatus.PROCESSING_FAILURE) as attempted:
        event_type, report = commitment_report(archive, request)
    if attempted.failure is not None:
        return attempted.failure, None
    threading.Thread(
        target=_send_report, args=(archive, event.assoc, event_type, report), daemon=True
    ).start()
    return GeneralStatus.SUCCESS, None


def _send_report(archive: Archive, assoc: Association, event_type: int, report: Dataset) -> None:
    time.sleep(0.05)  # let the N-ACTION response leave first
    if assoc.is_established:
        try:
            assoc.send_n_event_report(
                report, event_type, STORAGE_COMMITMENT, STORAGE_COMMITMENT_INSTANCE
            )
            return
        except Exception as exc:  # peer closed meanwhile: fall back to a new association
            log.info("commitment report on same association failed", error=str(exc))
    peer = aes.get(archive.engine, assoc.requestor.ae_title.strip())
    if peer is None:
        log.warning("commitment report undeliverable: requester not in the AE registry")
        return
    ae = AE(ae_title=archive.settings.ae_title)
    out = ae.associate(
        peer.host,
        peer.port,
        [build_context(STORAGE_COMMITMENT)],
        ae_title=peer.title,
        ext_neg=[build_role(STORAGE_COMMITMENT, scu_role=False, scp_role=True)],
        evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)],
    )
    if out.is_established:
        out.send_n_event_report(report, event_type, STORAGE_COMMITMENT, STORAGE_COMMITMENT_INSTANCE)
        out.release()
