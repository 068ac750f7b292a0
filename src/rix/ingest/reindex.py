"""``rix reindex``: rebuild the index from the object store alone (DESIGN.md: the store is
the truth, the index is derived), then report how the old index differed.

Run it with the server stopped: it replaces the study, series and instance rows in one
pass; patient records (the master patient index) are kept and recounted. Conflict copies
under ``conflicts/`` are listed again; with the keep-latest policy the first copy becomes
current again, because the store does not record which copy a past policy preferred.
Outside media a user reconciled to a local record (``rix.reconcile``) are indexed under
that record again: the file meta carries it (``ingest.owner_information``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import delete, select, update

from rix.archive import Archive
from rix.dataset import parsing
from rix.errors import RixError
from rix.index import records, write
from rix.index.database import begin_write
from rix.index.schema import instances, patients, series, studies
from rix.ingest import owner_code, reconciled_in
from rix.region import aes, mpi, trusts
from rix.region.trusts import Trust

CONFLICTS = "conflicts/"


@dataclass
class ReindexReport:
    indexed: int = 0
    conflicts: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    added: list[str] = field(default_factory=list)  # in the store, were not in the index
    dropped: list[str] = field(default_factory=list)  # in the index, not in the store
    changed: list[str] = field(default_factory=list)  # different object for the same UID

    @property
    def differences(self) -> int:
        return len(self.added) + len(self.dropped) + len(self.changed)


def snapshot(archive: Archive) -> dict[str, tuple[str, str]]:
    """SOP Instance UID → (sha256, storage key) as the index has it now."""
    with archive.engine.connect() as conn:
        rows = conn.execute(
            select(instances.c.sop_uid, instances.c.sha256, instances.c.storage_key)
        )
        return {r.sop_uid: (r.sha256, r.storage_key) for r in rows}


def read_record(
    archive: Archive, key: str, owners: dict[str, Trust] | None = None
) -> records.InstanceRecord:
    """The index record of a stored object; ``owners`` maps trust codes and AE titles to
    trusts, so ownership comes back from the file's meta (``ingest.owner_information``)
    or, for files stored before it was recorded, from the AE that sent it; outside
    media come back under the local record a user reconciled them to."""
    with archive.store.open(key) as f:
        data = f.read()
    split = parsing.split_file(data)
    calling_ae = str(split.meta.get("SourceApplicationEntityTitle", "")) if split.meta else ""
    owners = owners or {}
    private = parsing.private_information(split.meta)
    code = owner_code(private)
    trust = owners.get("trust:" + code) if code else owners.get("ae:" + calling_ae.strip())
    dataset = data[split.dataset_offset :]
    header = parsing.read_header(dataset, split.transfer_syntax)
    return records.InstanceRecord.from_header(
        header.dataset,
        transfer_syntax=header.transfer_syntax,
        size=len(data),
        sha256=hashlib.sha256(dataset).hexdigest(),
        storage_key=key,
        calling_ae=calling_ae,
        trust=trust,
        reconciled=reconciled_in(private),
        pixel_data_offset=(
            None
            if header.pixel_data_offset is None
            else split.dataset_offset + header.pixel_data_offset
        ),
    )


BATCH = 500  # one commit per batch: a rebuild of a million objects must not fsync a million times


def owners_of(archive: Archive) -> dict[str, Trust]:
    with archive.engine.connect() as conn:
        found = {"trust:" + t.code: t for t in trusts.all_trusts(conn)}
    for ae in aes.all_aes(archive.engine):
        if ae.trust is not None:
            found["ae:" + ae.title] = ae.trust
    return found


def reindex(archive: Archive, progress: Callable[[int], None] | None = None) -> ReindexReport:
    """Rebuild studies, series and instances from the store. Patient records stay: the
    master patient index (links made by hand or automatically, reviews, NHS numbers
    learnt later, records known from HL7 before any image) lives only in the index, and
    a record is found again by (issuer, patient ID); only its counters are recounted."""
    before = snapshot(archive)
    report = ReindexReport()
    owners = owners_of(archive)
    with begin_write(archive.engine) as conn:
        for table in (instances, series, studies):
            conn.execute(delete(table))
        conn.execute(update(patients).values(num_studies=0, num_series=0, num_instances=0))
    after: dict[str, tuple[str, str]] = {}
    batch: list[tuple[str, records.InstanceRecord]] = []
    for key in archive.store.all_keys():
        if progress is not None:
            progress(1)
        try:
            record = read_record(archive, key, owners)
        except (RixError, OSError, ValueError) as exc:
            report.unreadable.append((key, getattr(exc, "reason", str(exc))))
            continue
        batch.append((key, record))
        if key.startswith(CONFLICTS):
            report.conflicts += 1
        else:
            after[record.sop_uid] = (record.instance["sha256"], key)
            report.indexed += 1
        if len(batch) >= BATCH:
            _apply(archive, batch)
            batch = []
    _apply(archive, batch)
    report.added = sorted(set(after) - set(before))
    report.dropped = sorted(set(before) - set(after))
    report.changed = sorted(u for u in set(after) & set(before) if after[u] != before[u])
    return report


def _apply(archive: Archive, batch: list[tuple[str, records.InstanceRecord]]) -> None:
    with begin_write(archive.engine) as conn:
        write.add_instances(
            conn,
            [r for k, r in batch if not k.startswith(CONFLICTS)],
            write.IndexCache(),
            write.Hooks(new_record=mpi.on_new_record),  # no stability jobs: nothing is new
        )
        for key, record in batch:
            if key.startswith(CONFLICTS):
                write.add_conflict(
                    conn,
                    sop_uid=record.sop_uid,
                    storage_key=key,
                    sha256=record.instance["sha256"],
                    size=record.instance["size"],
                    calling_ae=record.instance["calling_ae"],
                    policy="reindex",
                    reason="copy kept beside the current one",
                )


def count_objects(archive: Archive) -> int:
    return sum(1 for _ in archive.store.all_keys())
