"""Per-instance DICOM JSON for WADO-RS metadata, built once after ingest, never per request.

A viewer opening a 300-slice series asks for its metadata first; reading 300 files for
that is what makes it wait. A background builder turns every newly indexed instance into
DICOM JSON (pydicom's PS3.18 F encoding) and keeps it in the index; the metadata route
concatenates the stored documents. An instance not yet built (just arrived, or after a
crash) is built on demand by the route, so the answer is always complete.

A document shows the identity the index applies on the way out, so an identity change
(a merge, a correction of a merged or reconciled record) deletes the documents it makes
stale in its own transaction (``rix.index.derived``); the builder builds them again.
Each document keeps a hash of itself (``etag``): the route's validator changes with the
document, not with the stored bytes, which a merge does not touch.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from rix.archive import Archive
from rix.index import derived
from rix.index.database import begin_write
from rix.index.schema import (
    instance_metadata,
    instances,
    reconciled_instances,
    series,
    studies,
)
from rix.region import identity

log = structlog.get_logger(__name__)

BULK_THRESHOLD = 1024  # values longer than this become BulkDataURIs (PS3.18 F.2.7)
BULK_MARKER = '"BulkDataURI":"/'


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending:
    instance_pk: int
    storage_key: str
    study_uid: str
    series_uid: str
    sop_uid: str

    @property
    def path(self) -> str:
        return f"/studies/{self.study_uid}/series/{self.series_uid}/instances/{self.sop_uid}"


def instance_json(
    archive: Archive, item: Pending, correction: identity.Coercion | None = None
) -> str:
    """DICOM JSON of one stored instance, bulk data as URIs relative to ``/dicomweb``.

    A BulkDataURI gives exactly the value InlineBinary would have carried, Pixel Data
    included (all frames, as stored); inside a sequence it names the item's path,
    ``bulk/00880200/0/7FE00010``, so an icon's pixels are not taken for the image's.
    ``correction``: the patient the index holds the instance under, when that is not the
    one its bytes name (outside media reconciled to a local record).
    """
    with archive.store.open(item.storage_key) as f:
        ds = dcmread(f)
    if correction is not None:
        correction.apply(ds)
    paths = element_paths(ds)

    def bulk_uri(elem: DataElement) -> str:
        return f"{item.path}/bulk/{paths[id(elem)]}"

    document = lenient_json(ds, bulk_uri)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def lenient_json(ds: Dataset, bulk_uri: Callable[[DataElement], str]) -> dict[str, Any]:
    """pydicom's DICOM JSON of ``ds``; when an element cannot be encoded (an IS of
    ``1A``), that element alone falls back to its text values, so the instance is still
    listed in study and series metadata rather than silently left out."""
    try:
        document: dict[str, Any] = ds.to_json_dict(BULK_THRESHOLD, bulk_uri)
    except (ValueError, TypeError) as exc:
        log.info("metadata built element by element", error=type(exc).__name__)
        return _element_by_element(ds, bulk_uri)
    return document


def _element_by_element(ds: Dataset, bulk_uri: Callable[[DataElement], str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for elem in ds:
        key = f"{elem.tag:08X}"
        if elem.VR == "SQ":
            items = [lenient_json(item, bulk_uri) for item in elem.value]
            out[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
            continue
        try:
            out[key] = elem.to_json_dict(bulk_uri, BULK_THRESHOLD)
        except (ValueError, TypeError):
            out[key] = _as_text(elem)
    return out


def _as_text(elem: DataElement) -> dict[str, Any]:
    value = elem.value
    if value is None or value == "":
        return {"vr": elem.VR}
    many = isinstance(value, list | tuple) or type(value).__name__ == "MultiValue"
    items = value if many else [value]
    return {"vr": elem.VR, "Value": [str(v) for v in items]}


def element_paths(ds: Dataset, prefix: str = "") -> dict[int, str]:
    """Every element of ``ds`` and its items, by object identity, with its bulk path:
    tags and item indexes separated by ``/`` (pydicom keeps each element it converted,
    so ``to_json_dict`` later hands the handler these same objects)."""
    out: dict[int, str] = {}
    for elem in ds:
        path = f"{prefix}{elem.tag:08X}"
        out[id(elem)] = path
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value):
                out.update(element_paths(item, f"{path}/{index}/"))
    return out


def element_at(ds: Dataset, path: str) -> DataElement:
    """The element a bulk path names; ``KeyError`` or ``ValueError`` when there is none."""
    steps = path.split("/")
    if len(steps) % 2 == 0 or len(steps) > 31:
        raise ValueError("a bulk path is tag(/item/tag)*")
    current = ds
    for step in range(0, len(steps) - 1, 2):
        sequence = current[_tag(steps[step])]
        if sequence.VR != "SQ":
            raise ValueError(f"{steps[step]} is not a sequence")
        index = steps[step + 1]
        if not index.isdigit() or int(index) >= len(sequence.value):
            raise KeyError(f"{steps[step]} has no item {index[:8]}")
        current = sequence.value[int(index)]
    return current[_tag(steps[-1])]


def _tag(text: str) -> int:
    if len(text) != 8 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ValueError("a tag is 8 hexadecimal digits")
    return int(text, 16)


def document_etag(document: str) -> str:
    """The validator of one document (``instance_metadata.etag``)."""
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def pending_query(
    study_uid: str | None = None,
    series_uid: str | None = None,
    after: int = 0,
    limit: int | None = None,
    *,
    corrected: bool = False,
) -> Any:
    """Instances without a document; ``corrected``: only those filed under a correction,
    the ones an identity change can make stale again (a far smaller set than all)."""
    query = (
        select(
            instances.c.id.label("instance_pk"),
            instances.c.storage_key,
            studies.c.study_uid,
            series.c.series_uid,
            instances.c.sop_uid,
        )
        .join(series, series.c.id == instances.c.series_pk)
        .join(studies, studies.c.id == series.c.study_pk)
        .outerjoin(instance_metadata, instance_metadata.c.instance_pk == instances.c.id)
        .where(instance_metadata.c.instance_pk.is_(None), instances.c.id > after)
        .order_by(instances.c.id)
    )
    if corrected:
        query = query.join(
            reconciled_instances, reconciled_instances.c.instance_pk == instances.c.id
        )
    if study_uid is not None:
        query = query.where(studies.c.study_uid == study_uid)
    if series_uid is not None:
        query = query.where(series.c.series_uid == series_uid)
    if limit is not None:
        query = query.limit(limit)
    return query


def pending(conn: Connection, **kwargs: Any) -> list[Pending]:
    return [Pending(**row._mapping) for row in conn.execute(pending_query(**kwargs))]


def build(archive: Archive, items: Iterable[Pending]) -> int:
    """Build and keep the JSON of ``items``; an unreadable object is logged and skipped.

    The files are read outside any transaction; the corrections they were built with are
    read again inside the write, with the records held (``derived.hold_patients``), and a
    document whose identity changed meanwhile is not kept: it stays pending, and is built
    again with the new identity, never left stale."""
    items = list(items)
    if not items:
        return 0
    pks = [i.instance_pk for i in items]
    with archive.engine.connect() as conn:
        corrections = identity.reconciled(conn, pks)
    rows: list[dict[str, Any]] = []
    for item in items:
        try:
            document = instance_json(archive, item, corrections.get(item.instance_pk))
        except Exception as exc:  # one broken object must not stop the others' metadata
            log.warning("metadata not built", key=item.storage_key, error=type(exc).__name__)
            continue
        rows.append(
            {"instance_pk": item.instance_pk, "json": document, "etag": document_etag(document)}
        )
    if not rows:
        return 0
    with begin_write(archive.engine) as conn:
        derived.hold_patients(conn, pks)
        now = identity.reconciled(conn, pks)
        rows = [r for r in rows if now.get(r["instance_pk"]) == corrections.get(r["instance_pk"])]
        if rows:
            conn.execute(insert_unless_built(conn.dialect.name), rows)
    return len(rows)


def insert_unless_built(dialect: str) -> Any:
    """INSERT that leaves alone rows another builder has just written: the thread and a
    metadata request build the same new instances, and on PostgreSQL a write transaction
    does not serialize them as SQLite's BEGIN IMMEDIATE does (a duplicate key was a 500)."""
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(instance_metadata).on_conflict_do_nothing(
        index_elements=[instance_metadata.c.instance_pk]
    )


class MetadataBuilder:
    """A thread that builds metadata for newly indexed instances, a batch at a time.

    It waits for a pause in storing (``QUIET`` seconds without an index commit) so it
    never takes CPU from a modality's send, but defers at most ``MAX_DEFER`` seconds;
    anything a viewer asks for before then is built by the route on demand. New instances
    are found past a cursor; documents an identity change deleted lie behind it, so every
    ``RESCAN`` seconds of idleness the corrected instances are looked over from the start.
    """

    QUIET = 1.0
    MAX_DEFER = 30.0
    RESCAN = 5.0

    def __init__(self, archive: Archive, interval: float = 0.5, batch: int = 50) -> None:
        self.archive = archive
        self.interval = interval
        self.batch = batch
        self._after = 0  # the newest instance looked at
        self._corrected_after = 0  # the same, in the current rescan of corrected instances
        self._rescanned = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rix-metadata", daemon=True)

    def start(self) -> MetadataBuilder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _busy(self, waiting_since: float) -> bool:
        now = time.monotonic()
        storing = now - self.archive.writer.last_store < self.QUIET
        return storing and now - waiting_since < self.MAX_DEFER

    def _run(self) -> None:
        waiting_since = time.monotonic()
        while not self._stop.is_set():
            if self._busy(waiting_since):
                self._stop.wait(self.interval)
                continue
            waiting_since = time.monotonic()
            try:
                if self._pass(waiting_since):
                    continue
            except Exception as exc:  # keep building; the route builds anything missed
                log.warning("metadata builder pass failed", error=type(exc).__name__)
            self._stop.wait(self.interval)

    def _pass(self, now: float) -> bool:
        """One batch built (True), or nothing to do until the next interval."""
        rescan = now - self._rescanned > self.RESCAN
        with self.archive.engine.connect() as conn:
            items = pending(conn, after=self._after, limit=self.batch)
            corrected = not items and rescan
            if corrected:
                items = pending(conn, after=self._corrected_after, limit=self.batch, corrected=True)
        if not items:
            if corrected:
                self._corrected_after, self._rescanned = 0, now
            return False
        build(self.archive, items)
        if corrected:
            self._corrected_after = items[-1].instance_pk
        else:
            self._after = items[-1].instance_pk
        return True
