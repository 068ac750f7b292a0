"""Per-instance DICOM JSON for WADO-RS metadata, built once after ingest, never per request.

A viewer opening a 300-slice series asks for its metadata first; reading 300 files for
that is what makes it wait. A background builder turns every newly indexed instance into
DICOM JSON (pydicom's PS3.18 F encoding) and keeps it in the index; the metadata route
concatenates the stored documents. An instance not yet built (just arrived, or after a
crash) is built on demand by the route, so the answer is always complete.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from pydicom import dcmread
from pydicom.dataelem import DataElement
from sqlalchemy import Connection, insert, select

from rix.archive import Archive
from rix.index.database import begin_write
from rix.index.schema import instance_metadata, instances, series, studies

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


def instance_json(archive: Archive, item: Pending) -> str:
    """DICOM JSON of one stored instance, bulk data as URIs relative to ``/dicomweb``."""

    def bulk_uri(elem: DataElement) -> str:
        if elem.tag == 0x7FE00010:
            return f"{item.path}/frames/1"
        return f"{item.path}/bulk/{elem.tag:08X}"

    with archive.store.open(item.storage_key) as f:
        ds = dcmread(f)
    document = ds.to_json_dict(BULK_THRESHOLD, bulk_uri)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def pending_query(
    study_uid: str | None = None,
    series_uid: str | None = None,
    after: int = 0,
    limit: int | None = None,
) -> Any:
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
    """Build and keep the JSON of ``items``; an unreadable object is logged and skipped."""
    rows = []
    for item in items:
        try:
            rows.append({"instance_pk": item.instance_pk, "json": instance_json(archive, item)})
        except Exception as exc:  # one broken object must not stop the others' metadata
            log.warning("metadata not built", key=item.storage_key, error=type(exc).__name__)
    if not rows:
        return 0
    with begin_write(archive.engine) as conn:
        known = set(
            conn.execute(
                select(instance_metadata.c.instance_pk).where(
                    instance_metadata.c.instance_pk.in_([r["instance_pk"] for r in rows])
                )
            ).scalars()
        )
        fresh = [r for r in rows if r["instance_pk"] not in known]
        if fresh:
            conn.execute(insert(instance_metadata), fresh)
    return len(rows)


class MetadataBuilder:
    """A thread that builds metadata for newly indexed instances, a batch at a time."""

    def __init__(self, archive: Archive, interval: float = 0.5, batch: int = 200) -> None:
        self.archive = archive
        self.interval = interval
        self.batch = batch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rix-metadata", daemon=True)

    def start(self) -> MetadataBuilder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        after = 0
        while not self._stop.is_set():
            try:
                with self.archive.engine.connect() as conn:
                    items = pending(conn, after=after, limit=self.batch)
                if items:
                    build(self.archive, items)
                    after = items[-1].instance_pk
                    continue
            except Exception as exc:  # keep building; the route builds anything missed
                log.warning("metadata builder pass failed", error=type(exc).__name__)
            self._stop.wait(self.interval)
