"""Query/Retrieve C-FIND SCP (PS3.4 C.4.1), Patient Root and Study Root."""

from __future__ import annotations

from collections.abc import Iterator

import structlog
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom.events import Event

from rix.archive import Archive
from rix.dicom import identifiers
from rix.dicom.store import status
from rix.errors import QueryStatus, RixError
from rix.index import queries

log = structlog.get_logger(__name__)

FindReply = tuple[Dataset | int, Dataset | None]


def handle_find(event: Event, archive: Archive) -> Iterator[FindReply]:
    identifier = event.identifier
    try:
        query = identifiers.parse(identifier, str(event.request.AffectedSOPClassUID))
        with archive.engine.connect() as conn:
            rows = list(queries.find(conn, query.level, query.matches))
    except RixError as exc:
        yield status(exc.dimse_status, exc.reason), None
        return
    except Exception as exc:
        log.exception("c-find failed", error=type(exc).__name__)
        yield (
            status(QueryStatus.UNABLE_TO_PROCESS, f"unable to process: {type(exc).__name__}"),
            None,
        )
        return
    implicit = event.context.transfer_syntax == ImplicitVRLittleEndian
    plan = identifiers.plan_response(
        identifier, query.level, archive.settings.ae_title, implicit=implicit
    )
    for row in rows:
        if event.is_cancelled:
            yield QueryStatus.CANCEL, None
            return
        yield QueryStatus.PENDING, identifiers.build_response(plan, row)
    yield QueryStatus.SUCCESS, None
