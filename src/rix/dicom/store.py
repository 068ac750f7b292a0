"""Storage SCP (PS3.4 Annex B): every C-STORE goes through the one ingest path."""

from __future__ import annotations

from typing import Any

import structlog
from pydicom.dataset import Dataset
from pynetdicom.events import Event

from rix.archive import Archive
from rix.errors import RixError, StoreStatus
from rix.ingest import Received, ingest

log = structlog.get_logger(__name__)


def status(code: int, comment: str = "") -> Dataset:
    ds = Dataset()
    ds.Status = int(code)
    if comment:
        ds.ErrorComment = comment[:64]  # LO: 64 characters at most
    return ds


def handle_store(event: Event, archive: Archive) -> Dataset:
    request: Any = event.request
    received = Received(
        dataset=request.DataSet.getvalue(),
        transfer_syntax=str(event.context.transfer_syntax),
        calling_ae=event.assoc.requestor.ae_title.strip(),
        source="dimse",
        sop_class_uid=str(request.AffectedSOPClassUID or ""),
        sop_instance_uid=str(request.AffectedSOPInstanceUID or ""),
    )
    try:
        result = ingest(archive, received)
    except RixError as exc:
        log.warning("c-store refused", reason=exc.reason, status=hex(exc.dimse_status))
        return status(exc.dimse_status, exc.reason)
    except Exception as exc:  # a bug must become an answer, never a dead association
        log.exception("c-store failed", error=type(exc).__name__)
        return status(StoreStatus.PROCESSING_FAILURE, f"processing failure: {type(exc).__name__}")
    return status(result.status, result.reason)
