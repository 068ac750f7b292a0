"""C-STORE SCU: rix sending stored instances to a DICOM peer (routing, transfers).

The same as a C-MOVE's sub-operations (``rix.dicom.retrieve``): the stored bytes go out
unchanged when the peer accepts their transfer syntax and no identity or transcoding
applies; otherwise the instance is decoded, re-identified for the destination trust and
re-encoded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import AE, build_context, evt
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext

from rix.archive import Archive
from rix.dataset import transcode
from rix.dicom import retrieve
from rix.index import queries
from rix.region import identity
from rix.region.aes import RemoteAE
from rix.retrieve.network import set_nodelay

log = structlog.get_logger(__name__)


class Unreachable(Exception):
    """No association: the peer is down, refused us, or accepted none of our contexts."""


@dataclass
class Sent:
    """What one association delivered, and what the peer refused (SOP UID, status)."""

    delivered: list[str] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)


def contexts(stored: Sequence[queries.StoredInstance], target: str) -> list[PresentationContext]:
    """As a C-MOVE proposes them (``retrieve.contexts_for``); with a transcoding
    ``target``, that syntax alone for every SOP class."""
    if not target:
        return retrieve.contexts_for(list(stored))
    classes = dict.fromkeys(s.sop_class_uid for s in stored)
    return [build_context(cls, [target]) for cls in classes][: retrieve.MAX_CONTEXTS]


def send(
    archive: Archive,
    destination: RemoteAE,
    stored: Sequence[queries.StoredInstance],
    outgoing: identity.Outgoing,
    *,
    transfer_syntax: str = "",
    on_delivered: Callable[[queries.StoredInstance], None] = lambda _item: None,
) -> Sent:
    """C-STORE ``stored`` to ``destination`` over one association, each instance with
    the identity ``outgoing`` gives it (as stored when none)."""
    settings = archive.settings
    ae = AE(ae_title=settings.ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = settings.dicom_timeout
    ae.requested_contexts = contexts(stored, transfer_syntax)
    assoc = ae.associate(
        destination.host,
        destination.port,
        ae_title=destination.title,
        evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)],
    )
    if not assoc.is_established:
        raise Unreachable(
            f"{destination.title} at {destination.host}:{destination.port} did not associate"
        )
    retrieve.send_as_stored(assoc)
    sent = Sent()
    try:
        for item in stored:
            status = _one(archive, assoc, item, outgoing.of(item), transfer_syntax)
            if status == 0 or 0xB000 <= status <= 0xBFFF:  # success, or stored with a warning
                sent.delivered.append(item.sop_uid)
                on_delivered(item)
            else:
                sent.refused.append((item.sop_uid, status))
    finally:
        if assoc.is_established:
            assoc.release()
    return sent


def _one(
    archive: Archive,
    assoc: Association,
    item: queries.StoredInstance,
    coercion: identity.Coercion | None,
    target: str,
) -> int:
    """The peer's C-STORE status for one instance."""
    if not assoc.is_established:
        raise Unreachable("the destination ended the association")
    if target and target != item.transfer_syntax:
        dataset: Dataset = copy_for(archive, item, coercion, target)
    else:
        dataset = retrieve.load(archive, item, list(assoc.accepted_contexts), coercion)
    response = assoc.send_c_store(dataset)
    status = int(getattr(response, "Status", -1)) if response else -1
    if status == -1:
        raise Unreachable("no C-STORE response (timeout or abort)")
    return status


def copy_for(
    archive: Archive,
    item: queries.StoredInstance,
    coercion: identity.Coercion | None,
    target: str = "",
) -> Dataset:
    """A stored instance decoded for a destination: the identity it goes out with
    (``identity.Outgoing.of``) applied and, when ``target`` is given, re-encoded in that
    transfer syntax (C-STORE, STOW-RS, WADO-RS, export)."""
    with archive.store.open(item.storage_key) as f:
        ds = dcmread(f)
    if coercion is not None:
        coercion.apply(ds)
    if target:
        transcode.to_syntax(ds, UID(target))
    return ds
