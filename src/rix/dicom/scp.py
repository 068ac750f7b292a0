"""The DICOM listener: presentation contexts, association policy and handler wiring.

Every storage SOP class is accepted in every transfer syntax pydicom knows, so rix stores
what modalities send without transcoding. Who the caller is (a registered AE, a user it
names, or an anonymous AE) is ``rix.dicom.principal``'s to decide.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import structlog
from pydicom.uid import AllTransferSyntaxes
from pynetdicom import AE, evt
from pynetdicom.events import Event
from pynetdicom.presentation import AllStoragePresentationContexts, PresentationContext
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # generated at import
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from rix.archive import Archive
from rix.config import quiet_phi_loggers
from rix.dicom import commitment, find, mpps, principal, retrieve, store, worklist
from rix.dicom.status import GeneralStatus
from rix.retrieve import copies
from rix.retrieve.network import set_nodelay, shorten_reactor_poll

log = structlog.get_logger(__name__)

QUERY_RETRIEVE = (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
)
TRANSFER_SYNTAXES = list(AllTransferSyntaxes)


def build_ae(archive: Archive) -> AE:
    settings = archive.settings
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_associations = settings.max_associations
    ae.network_timeout = settings.dicom_timeout
    ae.dimse_timeout = settings.dicom_timeout
    ae.acse_timeout = settings.dicom_timeout
    ae.maximum_pdu_size = 0  # no limit on what peers send us
    ae.add_supported_context(Verification)
    for context in AllStoragePresentationContexts:
        # scu_role lets C-GET send back over the requester's association (PS3.4 C.4.3)
        assert context.abstract_syntax is not None
        ae.add_supported_context(
            context.abstract_syntax, TRANSFER_SYNTAXES, scu_role=True, scp_role=True
        )
    for sop_class in QUERY_RETRIEVE:
        ae.add_supported_context(sop_class)
    ae.add_supported_context(commitment.STORAGE_COMMITMENT)
    ae.add_supported_context(worklist.MODALITY_WORKLIST_FIND)
    ae.add_supported_context(mpps.MODALITY_PERFORMED_PROCEDURE_STEP)
    return ae


def handle_find(event: Event, archive: Archive) -> Iterator[Any]:
    """C-FIND by information model: the Modality Worklist, or Query/Retrieve."""
    if str(event.request.AffectedSOPClassUID) == worklist.MODALITY_WORKLIST_FIND:
        return worklist.handle_find(event, archive)
    return find.handle_find(event, archive)


def prefer_proposed_syntaxes(event: Event) -> None:
    """Accept in each presentation context the transfer syntax the requestor lists first.

    pynetdicom accepts the acceptor's first supported syntax that was proposed, which for
    rix would be Implicit VR Little Endian: a modality proposing JPEG 2000 then
    uncompressed would be made to decompress, and a C-GET requester asking for Big
    Endian or JPEG would get implicit VR. PS3.8 9.3.2.2 lists syntaxes in the
    requestor's order of preference; rix follows it.
    """
    assoc: Any = event.assoc
    preference: dict[str, list[str]] = {}
    for cx in assoc.requestor.requested_contexts:
        order = preference.setdefault(str(cx.abstract_syntax), [])
        order.extend(str(ts) for ts in cx.transfer_syntax if str(ts) not in order)
    contexts = []
    for cx in assoc.acceptor.supported_contexts:
        wanted = preference.get(str(cx.abstract_syntax))
        contexts.append(_reordered(cx, wanted) if wanted else cx)
    assoc.acceptor.supported_contexts = contexts


def _reordered(context: PresentationContext, order: list[str]) -> PresentationContext:
    supported = [str(ts) for ts in context.transfer_syntax]
    first = [ts for ts in order if ts in supported]
    out = PresentationContext()
    out.abstract_syntax = context.abstract_syntax
    out.transfer_syntax = [*first, *(ts for ts in supported if ts not in first)]
    out.scu_role, out.scp_role = context.scu_role, context.scp_role
    return out


def handlers(archive: Archive) -> list[Any]:
    return [
        (evt.EVT_CONN_OPEN, set_nodelay),
        (evt.EVT_REQUESTED, prefer_proposed_syntaxes),
        (evt.EVT_REQUESTED, partial(principal.on_requested, archive=archive)),
        (evt.EVT_USER_ID, partial(principal.on_user_identity, archive=archive)),
        (evt.EVT_RELEASED, partial(store.audit_association, archive=archive)),
        (evt.EVT_ABORTED, partial(store.audit_association, archive=archive)),
        (evt.EVT_C_ECHO, lambda _event: GeneralStatus.SUCCESS),
        (evt.EVT_C_STORE, partial(store.handle_store, archive=archive)),
        (evt.EVT_C_FIND, partial(handle_find, archive=archive)),
        (evt.EVT_C_MOVE, partial(retrieve.handle_move, archive=archive)),
        (evt.EVT_C_GET, partial(retrieve.handle_get, archive=archive)),
        (evt.EVT_N_ACTION, partial(commitment.handle_action, archive=archive)),
        (evt.EVT_N_CREATE, partial(mpps.handle_create, archive=archive)),
        (evt.EVT_N_SET, partial(mpps.handle_set, archive=archive)),
    ]


def start(archive: Archive) -> ThreadedAssociationServer:
    """Listen on the configured address without blocking; ``shutdown()`` stops it."""
    quiet_phi_loggers()
    shorten_reactor_poll()
    copies.enable_sending_as_stored()
    retrieve.answer_before_associating()
    ae = build_ae(archive)
    settings = archive.settings
    server = ae.start_server(
        (settings.dicom_host, settings.dicom_port), block=False, evt_handlers=handlers(archive)
    )
    log.info(
        "dicom listening",
        host=settings.dicom_host,
        port=settings.dicom_port,
        ae_title=settings.ae_title,
    )
    assert server is not None
    return server
