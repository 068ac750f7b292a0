"""Query/Retrieve C-FIND SCP (PS3.4 C.4.1), Patient Root and Study Root."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom.events import Event

from rix import access
from rix.access import trail
from rix.archive import Archive
from rix.dicom import identifiers
from rix.dicom.principal import principal_of
from rix.dicom.status import attempt
from rix.errors import QueryStatus
from rix.index import queries

FindReply = tuple[Dataset | int, Dataset | None]
MAX_QUEUED = 16  # responses waiting to be sent before the handler pauses


def handle_find(event: Event, archive: Archive) -> Iterator[FindReply]:
    identifier = event.identifier
    principal = principal_of(event)
    with attempt("c-find", QueryStatus.UNABLE_TO_PROCESS) as attempted:
        query = identifiers.parse(identifier, str(event.request.AffectedSOPClassUID))
        with archive.engine.connect() as conn:
            rows = list(
                queries.find(conn, query.level, query.matches, scope=access.scope(principal))
            )
    if attempted.failure is not None:
        yield attempted.failure, None
        return
    trail.record_query(archive.writer.post, principal, query.level, query.matches, rows)
    implicit = event.context.transfer_syntax == ImplicitVRLittleEndian
    plan = identifiers.plan_response(
        identifier, query.level, archive.settings.ae_title, implicit=implicit
    )
    for row in rows:
        if _cancelled_while_peer_catches_up(event):
            yield QueryStatus.CANCEL, None
            return
        yield QueryStatus.PENDING, identifiers.build_response(plan, row)
    yield QueryStatus.SUCCESS, None


def _cancelled_while_peer_catches_up(event: Event) -> bool:
    """Wait while the outgoing queue is full, watching for C-CANCEL (PS3.7 9.3.2.3).

    Responses are built faster than the network takes them; without this pause a large
    answer would sit whole in pynetdicom's queue (memory) and a C-CANCEL would arrive
    after the last response was already queued, i.e. never take effect.
    """
    outgoing: Any = event.assoc.dul.to_provider_queue
    while outgoing.qsize() > MAX_QUEUED and not event.is_cancelled:
        if not event.assoc.is_established:
            return True
        time.sleep(0.0005)
    return bool(event.is_cancelled)
