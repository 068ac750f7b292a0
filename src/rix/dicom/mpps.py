"""Modality Performed Procedure Step SCP (PS3.4 F.7): N-CREATE and N-SET on
1.2.840.10008.3.1.2.3.3, translated into ``rix.workflow.procedure_steps``.

Only an AE registered to a trust (or a user of one, named by the association) reports
performed steps: they move that trust's orders. Every failure is answered
(``rix.dicom.status.attempt``) with the status its exception carries (0106 invalid
value, 0111 duplicate, 0112 unknown step, 0110 with Error ID A710 for a finished step,
0124 not authorised) and an Error Comment; anything unexpected is 0110, Processing
Failure, and a log line.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.events import Event

from rix import audit
from rix.access import radiology, trail
from rix.archive import Archive
from rix.dicom.principal import principal_of
from rix.dicom.status import GeneralStatus, attempt
from rix.index.database import begin_write
from rix.workflow import procedure_steps

MODALITY_PERFORMED_PROCEDURE_STEP = "1.2.840.10008.3.1.2.3.3"


def _audit(archive: Archive, event: Event, action: str, step: procedure_steps.Step) -> None:
    trail.record(
        archive.writer.post,
        principal_of(event),
        audit.Kind.ADMIN,
        audit.Outcome.SUCCESS,
        None,
        {"action": action, "step": step.sop_uid, "status": step.status, "order": step.order_pk},
    )


def handle_create(event: Event, archive: Archive) -> tuple[int | Dataset, Dataset | None]:
    """EVT_N_CREATE: a step begins (IN PROGRESS)."""
    request: Any = event.request
    with attempt("mpps", GeneralStatus.PROCESSING_FAILURE) as attempted:
        principal = principal_of(event)
        trust = radiology.require_mpps(principal)
        ds = event.attribute_list
        assigned = request.AffectedSOPInstanceUID is None
        sop_uid = str(generate_uid()) if assigned else str(request.AffectedSOPInstanceUID)
        with begin_write(archive.engine) as conn:
            step = procedure_steps.start(
                conn, trust=trust, calling_ae=principal.name, sop_uid=sop_uid, ds=ds
            )
    if attempted.failure is not None:
        return attempted.failure, None
    _audit(archive, event, "mpps create", step)
    if assigned:  # PS3.7 10.1.5.1.4: the SCP names the instance it made
        ds.AffectedSOPInstanceUID = sop_uid
    return GeneralStatus.SUCCESS, ds


def handle_set(event: Event, archive: Archive) -> tuple[int | Dataset, Dataset | None]:
    """EVT_N_SET: a step changes, or finishes (COMPLETED, DISCONTINUED)."""
    request: Any = event.request
    with attempt("mpps", GeneralStatus.PROCESSING_FAILURE) as attempted:
        trust = radiology.require_mpps(principal_of(event))
        ds = event.modification_list
        with begin_write(archive.engine) as conn:
            step = procedure_steps.change(
                conn, trust=trust, sop_uid=str(request.RequestedSOPInstanceUID), ds=ds
            )
    if attempted.failure is not None:
        return attempted.failure, None
    _audit(archive, event, "mpps set", step)
    return GeneralStatus.SUCCESS, ds
