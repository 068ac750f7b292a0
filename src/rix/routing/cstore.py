"""C-STORE SCU: rix sending stored instances to a DICOM peer (routing, transfers).

Each instance goes out as a C-MOVE's sub-operations send it (``rix.retrieve.copies``):
the stored bytes unchanged when the peer accepts their transfer syntax and no identity
or transcoding applies; otherwise decoded, re-identified for the destination trust and
re-encoded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.status import STATUS_SUCCESS, STATUS_WARNING, code_to_category

from rix.archive import Archive
from rix.index import queries
from rix.region import identity
from rix.region.aes import RemoteAE
from rix.retrieve import copies
from rix.retrieve.network import set_nodelay

log = structlog.get_logger(__name__)


class Unreachable(Exception):
    """No association: the peer is down, refused us, or accepted none of our contexts."""


@dataclass
class Sent:
    """What one association delivered, and what the peer refused (SOP UID, status)."""

    delivered: list[str] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)


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
    ae.requested_contexts = copies.contexts_for(stored, transfer_syntax)
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
    copies.send_as_stored(assoc)
    sent = Sent()
    try:
        for item in stored:
            status = _one(archive, assoc, item, outgoing.of(item), transfer_syntax)
            if code_to_category(status) in (STATUS_SUCCESS, STATUS_WARNING):
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
    accepted = list(assoc.accepted_contexts)
    dataset = copies.for_association(archive.store, item, accepted, coercion, target)
    response = assoc.send_c_store(dataset)
    status = int(getattr(response, "Status", -1)) if response else -1
    if status == -1:
        raise Unreachable("no C-STORE response (timeout or abort)")
    return status
