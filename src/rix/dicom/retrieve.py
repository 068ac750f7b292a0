"""Query/Retrieve C-MOVE and C-GET SCP (PS3.4 C.4.2, C.4.3).

Instances are sent as stored: the stored file is read and pynetdicom writes its elements
back unchanged when the peer accepted the stored transfer syntax (byte-identical to what
was received). Only when the peer accepted none of it is the instance decompressed to
Explicit VR Little Endian (transcoding only on request, DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import structlog
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import build_context, evt
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext

from rix.archive import Archive
from rix.dicom import identifiers
from rix.dicom.network import set_nodelay
from rix.errors import InvalidQuery, QueryStatus, RixError
from rix.index import aes, queries
from rix.index.attributes import UNIQUE_KEY

log = structlog.get_logger(__name__)
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1..255


def plan(archive: Archive, identifier: Dataset) -> list[queries.StoredInstance]:
    """The instances an identifier asks for; its level's unique key must be given."""
    query = identifiers.parse(identifier)
    unique = UNIQUE_KEY[query.level]
    if not any(m.attribute.keyword == unique and not m.is_universal for m in query.matches):
        raise InvalidQuery(f"a {query.level.value}-level retrieve needs {unique}")
    with archive.engine.connect() as conn:
        return queries.stored_instances(conn, query.matches)


def contexts_for(stored: list[queries.StoredInstance]) -> list[PresentationContext]:
    """One context per stored (SOP class, syntax), plus an uncompressed fallback per class."""
    pairs = dict.fromkeys((s.sop_class_uid, s.transfer_syntax) for s in stored)
    contexts = [build_context(cls, [ts]) for cls, ts in pairs]
    for cls in dict.fromkeys(cls for cls, _ts in pairs):
        contexts.append(build_context(cls, list(UNCOMPRESSED)))
    return contexts[:MAX_CONTEXTS]


def load(
    archive: Archive,
    item: queries.StoredInstance,
    accepted: list[PresentationContext],
) -> Dataset:
    with archive.store.open(item.storage_key) as f:
        ds = dcmread(f)
    stored_ts = UID(item.transfer_syntax)
    offered = {
        str(ts)
        for cx in accepted
        if cx.abstract_syntax == item.sop_class_uid
        for ts in cx.transfer_syntax
    }
    if stored_ts.is_compressed and str(stored_ts) not in offered and offered & set(UNCOMPRESSED):
        ds.decompress()
    return ds


def _sub_operations(
    archive: Archive,
    stored: list[queries.StoredInstance],
    accepted: Callable[[], list[PresentationContext]],
    event: Event,
) -> Iterator[tuple[int, Dataset | None]]:
    for item in stored:
        if event.is_cancelled:
            yield QueryStatus.CANCEL, None
            return
        try:
            yield QueryStatus.PENDING, load(archive, item, accepted())
        except (RixError, OSError, ValueError, RuntimeError) as exc:
            log.warning("retrieve sub-operation could not load", error=str(exc))
            failed = Dataset()
            failed.SOPInstanceUID = item.sop_uid
            yield QueryStatus.PENDING, failed  # counted as a failed sub-operation


def handle_move(event: Event, archive: Archive) -> Iterator[Any]:
    destination = aes.get(
        archive.engine,
        event.move_destination.decode("ascii", "replace")
        if isinstance(event.move_destination, bytes)
        else str(event.move_destination),
    )
    if destination is None:
        yield None, None  # 0xA801 Move Destination Unknown
        return
    try:
        stored, refused = plan(archive, event.identifier), None
    except RixError as exc:
        stored, refused = [], exc
    sub_assoc: dict[str, Any] = {}

    def established(ev: Event) -> None:
        sub_assoc["assoc"] = ev.assoc

    yield (
        destination.host,
        destination.port,
        {
            "contexts": contexts_for(stored) or [build_context("1.2.840.10008.1.1")],
            "ae_title": destination.title,
            "evt_handlers": [(evt.EVT_CONN_OPEN, set_nodelay), (evt.EVT_ESTABLISHED, established)],
        },
    )
    if refused is not None:
        log.warning("c-move refused", reason=refused.reason)
        raise refused  # pynetdicom answers a failure (0xC513) before associating
    yield len(stored)

    def accepted() -> list[PresentationContext]:
        assoc = sub_assoc.get("assoc")
        return list(assoc.accepted_contexts) if assoc is not None else []

    yield from _sub_operations(archive, stored, accepted, event)


def handle_get(event: Event, archive: Archive) -> Iterator[Any]:
    try:
        stored = plan(archive, event.identifier)
    except RixError as exc:
        log.warning("c-get refused", reason=exc.reason)
        raise  # pynetdicom answers a failure status
    yield len(stored)
    yield from _sub_operations(archive, stored, lambda: list(event.assoc.accepted_contexts), event)
