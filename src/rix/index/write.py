"""Adding instances to the index: patient, study, series and instance rows with counters.

Runs inside the group-commit transaction of ``index.group_commit``; each call is wrapped in
a savepoint so one bad instance never fails its neighbours in the batch. What the layers
above do in the same transaction (link a new patient record in the MPI, schedule a study's
stability job) reaches this module as ``Hooks``, wired by the composition root.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from rix.index.records import InstanceRecord
from rix.index.schema import (
    instance_conflicts,
    instances,
    patients,
    reconciled_instances,
    reconciliations,
    series,
    studies,
)


def _no_new_record(conn: Connection, patient_pk: int) -> None:
    """A new patient record: nothing more to do (no MPI wired in)."""


def _no_added(conn: Connection, study_uids: Iterable[str]) -> None:
    """Instances added: nothing more to do (no stability job wired in)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Hooks:
    """What runs in the transaction that adds instances, durable with them.

    ``new_record(conn, patient_pk)`` for each patient record created with an NHS number
    (``rix.region.mpi.on_new_record`` links it to its person); ``added(conn, study_uids)``
    once per commit with the studies that gained instances (``rix.routing.stability``).
    """

    new_record: Callable[[Connection, int], None] = _no_new_record
    added: Callable[[Connection, Iterable[str]], None] = _no_added


class AddOutcome(StrEnum):
    ADDED = "added"
    EXISTS = "exists"


@dataclass(frozen=True, slots=True, kw_only=True)
class Existing:
    sha256: str
    storage_key: str
    study_uid: str
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AddResult:
    outcome: AddOutcome
    existing: Existing | None = None


def find_instance(conn: Connection, sop_uid: str) -> Existing | None:
    row = conn.execute(
        select(
            instances.c.sha256, instances.c.storage_key, instances.c.size, instances.c.series_pk
        ).where(instances.c.sop_uid == sop_uid)
    ).first()
    if row is None:
        return None
    study_uid = conn.execute(
        select(studies.c.study_uid)
        .join(series, series.c.study_pk == studies.c.id)
        .where(series.c.id == row.series_pk)
    ).scalar_one()
    return Existing(
        sha256=row.sha256, storage_key=row.storage_key, study_uid=study_uid, size=row.size
    )


@dataclass
class IndexCache:
    """Primary keys of patients, studies and series the writer has seen, and each study's
    modalities and SOP classes, so adding an instance to a known series is one INSERT.

    Rows are never deleted while a server runs (``rix reindex`` runs with it stopped); a
    stale entry would fail a foreign key, and the writer then clears the cache and retries.
    """

    patients: dict[tuple[str, str], int] = field(default_factory=dict)
    studies: dict[str, int] = field(default_factory=dict)
    series: dict[str, int] = field(default_factory=dict)
    study_lists: dict[int, tuple[set[str], set[str]]] = field(default_factory=dict)
    reconciliations: dict[tuple[str, str], int] = field(default_factory=dict)
    limit: int = 200_000

    def trim(self) -> None:
        if len(self.series) > self.limit:
            self.clear()

    def clear(self) -> None:
        for table in (self.patients, self.studies, self.series, self.study_lists):
            table.clear()
        self.reconciliations.clear()


def add_instances(
    conn: Connection,
    records: list[InstanceRecord],
    cache: IndexCache,
    hooks: Hooks = Hooks(),
) -> list[AddResult]:
    """Insert a batch of instances, and the patient/study/series rows they are first of.

    A handful of statements per batch, whatever its size: one look-up of existing SOP
    Instance UIDs, one multi-row INSERT, one counter UPDATE per table.
    """
    cache.trim()
    sops = [r.sop_uid for r in records]
    known = {
        row.sop_uid: row
        for row in conn.execute(
            select(
                instances.c.sop_uid,
                instances.c.sha256,
                instances.c.storage_key,
                instances.c.size,
                instances.c.series_pk,
            ).where(instances.c.sop_uid.in_(sops))
        )
    }
    results: list[AddResult] = []
    new_rows: list[dict[str, Any]] = []
    counts = _Counts()
    first_in_batch: dict[str, InstanceRecord] = {}
    links: dict[str, int] = {}  # SOP Instance UID → reconciliation
    for record in records:
        previous = known.get(record.sop_uid)
        if previous is not None or record.sop_uid in first_in_batch:
            results.append(
                AddResult(
                    outcome=AddOutcome.EXISTS,
                    existing=_existing(conn, previous, first_in_batch, record),
                )
            )
            continue
        first_in_batch[record.sop_uid] = record
        patient_pk = _patient_pk(conn, record.patient, cache, hooks)
        if record.reconciliation is not None:
            links[record.sop_uid] = _reconciliation_pk(conn, record, patient_pk, cache)
        study_pk, new_study = _study_pk(conn, record.study, patient_pk, record.received_at, cache)
        series_pk, new_series = _series_pk(conn, record.series, study_pk, record.received_at, cache)
        new_rows.append(
            {"series_pk": series_pk, "received_at": record.received_at, **record.instance}
        )
        counts.add(patient_pk, study_pk, series_pk, new_study, new_series, record.received_at)
        _note_lists(conn, cache, study_pk, record, counts)
        results.append(AddResult(outcome=AddOutcome.ADDED))
    if new_rows:
        conn.execute(insert(instances), new_rows)
        counts.apply(conn, cache)
        _link_reconciled(conn, links)
    return results


def _reconciliation_pk(
    conn: Connection, record: InstanceRecord, patient_pk: int, cache: IndexCache
) -> int:
    """The reconciliation row of the record's upload and outside patient, added by its
    first instance; the local record then also lists the outside ID among its others."""
    values = record.reconciliation
    assert values is not None
    key = (values["upload_id"], values["outside_key"])
    if key in cache.reconciliations:
        return cache.reconciliations[key]
    pk = conn.execute(
        select(reconciliations.c.id).where(
            reconciliations.c.upload_id == key[0], reconciliations.c.outside_key == key[1]
        )
    ).scalar()
    if pk is None:
        result = conn.execute(insert(reconciliations).values(patient_pk=patient_pk, **values))
        pk = _new_pk(result.inserted_primary_key)
        add_other_id(conn, patient_pk, values["outside_patient_id"])
    cache.reconciliations[key] = int(pk)
    return int(pk)


def add_other_id(conn: Connection, patient_pk: int, other_id: str) -> None:
    """C-FIND and QIDO by the outside ID (Other Patient IDs) find the local record."""
    current = conn.execute(
        select(patients.c.other_patient_ids).where(patients.c.id == patient_pk)
    ).scalar_one()
    ids = [v for v in str(current).split("\\") if v]
    if other_id and other_id not in ids:
        conn.execute(
            update(patients)
            .where(patients.c.id == patient_pk)
            .values(other_patient_ids="\\".join([*ids, other_id]))
        )


def _link_reconciled(conn: Connection, links: dict[str, int]) -> None:
    if not links:
        return
    rows = conn.execute(
        select(instances.c.id, instances.c.sop_uid).where(instances.c.sop_uid.in_(list(links)))
    )
    conn.execute(
        insert(reconciled_instances),
        [{"instance_pk": r.id, "reconciliation_pk": links[r.sop_uid]} for r in rows],
    )


def _existing(
    conn: Connection, previous: Any, batch: dict[str, InstanceRecord], record: InstanceRecord
) -> Existing:
    if previous is None:  # the same instance twice in one batch (two senders at once)
        first = batch[record.sop_uid]
        return Existing(
            sha256=first.instance["sha256"],
            storage_key=first.instance["storage_key"],
            study_uid=first.study["study_uid"],
            size=first.instance["size"],
        )
    study_uid = conn.execute(
        select(studies.c.study_uid)
        .join(series, series.c.study_pk == studies.c.id)
        .where(series.c.id == previous.series_pk)
    ).scalar_one()
    return Existing(
        sha256=previous.sha256,
        storage_key=previous.storage_key,
        study_uid=study_uid,
        size=previous.size,
    )


@dataclass
class _Counts:
    """Counter increments of one batch, applied with one UPDATE per table."""

    series_n: dict[int, int] = field(default_factory=dict)
    study_n: dict[int, list[int]] = field(default_factory=dict)  # [instances, series]
    patient_n: dict[int, list[int]] = field(default_factory=dict)  # [instances, series, studies]
    lists_changed: set[int] = field(default_factory=set)
    now: float = 0.0

    def add(
        self,
        patient_pk: int,
        study_pk: int,
        series_pk: int,
        new_study: bool,
        new_series: bool,
        now: float,
    ) -> None:
        self.now = max(self.now, now)
        self.series_n[series_pk] = self.series_n.get(series_pk, 0) + 1
        st = self.study_n.setdefault(study_pk, [0, 0])
        st[0] += 1
        st[1] += int(new_series)
        pa = self.patient_n.setdefault(patient_pk, [0, 0, 0])
        pa[0] += 1
        pa[1] += int(new_series)
        pa[2] += int(new_study)

    def apply(self, conn: Connection, cache: IndexCache) -> None:
        conn.execute(
            update(series)
            .where(series.c.id == bindparam("pk"))
            .values(num_instances=series.c.num_instances + bindparam("n"), updated_at=self.now),
            [{"pk": pk, "n": n} for pk, n in self.series_n.items()],
        )
        conn.execute(
            update(studies)
            .where(studies.c.id == bindparam("pk"))
            .values(
                num_instances=studies.c.num_instances + bindparam("n"),
                num_series=studies.c.num_series + bindparam("s"),
                updated_at=self.now,
            ),
            [{"pk": pk, "n": n, "s": s} for pk, (n, s) in self.study_n.items()],
        )
        conn.execute(
            update(patients)
            .where(patients.c.id == bindparam("pk"))
            .values(
                num_instances=patients.c.num_instances + bindparam("n"),
                num_series=patients.c.num_series + bindparam("s"),
                num_studies=patients.c.num_studies + bindparam("t"),
            ),
            [{"pk": pk, "n": n, "s": s, "t": t} for pk, (n, s, t) in self.patient_n.items()],
        )
        for study_pk in self.lists_changed:
            modalities, sop_classes = cache.study_lists[study_pk]
            conn.execute(
                update(studies)
                .where(studies.c.id == study_pk)
                .values(
                    modalities="\\".join(sorted(modalities)),
                    sop_classes="\\".join(sorted(sop_classes)),
                )
            )


def _note_lists(
    conn: Connection, cache: IndexCache, study_pk: int, record: InstanceRecord, counts: _Counts
) -> None:
    """Keep ModalitiesInStudy and SOPClassesInStudy current (written once per batch)."""
    lists = cache.study_lists.get(study_pk)
    if lists is None:
        row = conn.execute(
            select(studies.c.modalities, studies.c.sop_classes).where(studies.c.id == study_pk)
        ).one()
        lists = (
            set(filter(None, row.modalities.split("\\"))),
            set(filter(None, row.sop_classes.split("\\"))),
        )
        cache.study_lists[study_pk] = lists
    modality, sop_class = record.series["modality"], record.instance["sop_class_uid"]
    if (modality and modality not in lists[0]) or sop_class not in lists[1]:
        if modality:
            lists[0].add(modality)
        lists[1].add(sop_class)
        counts.lists_changed.add(study_pk)


def _patient_pk(conn: Connection, values: dict[str, Any], cache: IndexCache, hooks: Hooks) -> int:
    key = (values["issuer"], values["patient_id"])
    if key in cache.patients:
        return cache.patients[key]
    pk = conn.execute(
        select(patients.c.id).where(
            patients.c.issuer == values["issuer"], patients.c.patient_id == values["patient_id"]
        )
    ).scalar()
    if pk is None:
        pk = _new_pk(conn.execute(insert(patients).values(**values)).inserted_primary_key)
        if values["nhs_number"]:  # a record without one has nothing to link by
            hooks.new_record(conn, pk)
    cache.patients[key] = int(pk)
    return int(pk)


def _study_pk(
    conn: Connection, values: dict[str, Any], patient_pk: int, now: float, cache: IndexCache
) -> tuple[int, bool]:
    uid = values["study_uid"]
    if uid in cache.studies:
        return cache.studies[uid], False
    pk = conn.execute(select(studies.c.id).where(studies.c.study_uid == uid)).scalar()
    new = pk is None
    if pk is None:
        person_pk = (
            select(patients.c.person_pk).where(patients.c.id == patient_pk).scalar_subquery()
        )
        result = conn.execute(
            insert(studies).values(
                patient_pk=patient_pk,
                person_pk=person_pk,
                created_at=now,
                updated_at=now,
                **values,
            )
        )
        pk = _new_pk(result.inserted_primary_key)
        cache.study_lists[int(pk)] = (set(), set())  # a new study lists nothing yet
    cache.studies[uid] = int(pk)
    return int(pk), new


def _series_pk(
    conn: Connection, values: dict[str, Any], study_pk: int, now: float, cache: IndexCache
) -> tuple[int, bool]:
    uid = values["series_uid"]
    if uid in cache.series:
        return cache.series[uid], False
    pk = conn.execute(select(series.c.id).where(series.c.series_uid == uid)).scalar()
    new = pk is None
    if pk is None:
        result = conn.execute(insert(series).values(study_pk=study_pk, updated_at=now, **values))
        pk = _new_pk(result.inserted_primary_key)
    cache.series[uid] = int(pk)
    return int(pk), new


def _new_pk(key: Any) -> int:
    assert key is not None
    return int(key[0])


def add_conflict(
    conn: Connection,
    *,
    sop_uid: str,
    storage_key: str,
    sha256: str,
    size: int,
    calling_ae: str,
    policy: str,
    reason: str,
) -> None:
    """Record a copy kept beside the current one; idempotent per storage key."""
    known = conn.execute(
        select(instance_conflicts.c.id).where(instance_conflicts.c.storage_key == storage_key)
    ).first()
    if known is None:
        conn.execute(
            insert(instance_conflicts).values(
                sop_uid=sop_uid,
                storage_key=storage_key,
                sha256=sha256,
                size=size,
                received_at=time.time(),
                calling_ae=calling_ae[:16],
                policy=policy,
                reason=reason,
            )
        )


def make_current(
    conn: Connection, *, sop_uid: str, storage_key: str, sha256: str, size: int, ts: str
) -> None:
    """Point the instance at another stored copy (keep-latest policy); no bytes move."""
    conn.execute(
        update(instances)
        .where(instances.c.sop_uid == sop_uid)
        .values(storage_key=storage_key, sha256=sha256, size=size, transfer_syntax=ts)
    )
