"""Adding instances to the index: patient, study, series and instance rows with counters.

Runs inside the group-commit transaction of ``index.writer``; each call is wrapped in a
savepoint so one bad instance never fails its neighbours in the batch.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import Connection, bindparam, insert, select, update

from rix.dataset import nhs, parsing
from rix.index.attributes import Level, stored_attributes
from rix.index.schema import (
    instance_conflicts,
    instances,
    patients,
    reconciled_instances,
    reconciliations,
    series,
    studies,
)
from rix.region import mpi
from rix.region.trusts import Trust


@dataclass(frozen=True, slots=True, kw_only=True)
class OutsidePatient:
    """A patient as outside media name them. Two instances are the same outside patient
    only when issuer, ID, name, birth date and sex all agree: a zip may hold two
    hospitals' patients under one number, and the user reconciles each separately."""

    patient_id: str
    issuer: str
    name: str
    birth_date: str
    sex: str

    @classmethod
    def from_dataset(cls, ds: Dataset) -> OutsidePatient:
        return cls(
            patient_id=parsing.text(ds, "PatientID"),
            issuer=parsing.text(ds, "IssuerOfPatientID"),
            name=parsing.text(ds, "PatientName"),
            birth_date=parsing.text(ds, "PatientBirthDate"),
            sex=parsing.text(ds, "PatientSex"),
        )

    @property
    def key(self) -> str:
        parts = (self.issuer, self.patient_id, self.name, self.birth_date, self.sex)
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconciled:
    """The local record a user chose for an outside patient (``rix.reconcile``): the
    instance is indexed under it, and the stored file's meta carries it (with who chose
    it, when, in which upload) so ``rix reindex`` indexes it there again."""

    patient_id: str
    issuer: str
    name: str = ""
    birth_date: str = ""
    sex: str = ""
    nhs_number: str = ""
    upload: str
    by: str
    at: float

    @property
    def ref(self) -> str:
        return f"{self.issuer}/{self.patient_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceRecord:
    """Everything the index keeps about one stored instance."""

    patient: dict[str, Any]
    study: dict[str, Any]
    series: dict[str, Any]
    instance: dict[str, Any]
    received_at: float = field(default_factory=time.time)
    reconciliation: dict[str, Any] | None = None  # a ``reconciliations`` row, patient aside

    @property
    def sop_uid(self) -> str:
        return str(self.instance["sop_uid"])

    @classmethod
    def from_header(
        cls,
        ds: Dataset,
        *,
        transfer_syntax: str,
        size: int,
        sha256: str,
        storage_key: str,
        calling_ae: str,
        pixel_data_offset: int | None = None,
        received_at: float | None = None,
        trust: Trust | None = None,
        nhs_number: str | None = None,
        reconciled: Reconciled | None = None,
    ) -> InstanceRecord:
        """``trust`` is the sender's: the owner of a new study, and the issuer of a
        PatientID that arrives without one (the trust's own hospital number).
        ``reconciled``: the local record to index the instance under instead of the
        patient the dataset names (outside media, ``rix.reconcile``)."""
        values = {level: _level_values(ds, level) for level in Level}
        patient = values[Level.PATIENT]
        patient["patient_name_ci"] = name_key(patient["patient_name"])
        patient["other_patient_ids"] = _other_ids(ds)
        found = nhs.in_dataset(ds).value if nhs_number is None else nhs_number
        patient["nhs_number"] = found[:16]
        if trust is not None and not patient["issuer"]:
            patient["issuer"] = trust.issuer
        reconciliation = None
        if reconciled is not None:
            reconciliation = _reconciliation(ds, reconciled, trust)
            patient.update(_local_patient(reconciled, reconciliation["outside_patient_id"]))
        study = values[Level.STUDY]
        study["referring_physician_name_ci"] = name_key(study["referring_physician_name"])
        study["trust_pk"] = None if trust is None else trust.pk
        instance = values[Level.IMAGE]
        instance.update(
            transfer_syntax=transfer_syntax,
            size=size,
            sha256=sha256,
            storage_key=storage_key,
            calling_ae=calling_ae[:16],
            pixel_data_offset=pixel_data_offset,
        )
        if instance["number_of_frames"] is None and "Rows" in ds:
            instance["number_of_frames"] = 1
        return cls(
            patient=patient,
            study=study,
            series=values[Level.SERIES],
            instance=instance,
            received_at=time.time() if received_at is None else received_at,
            reconciliation=reconciliation,
        )


def _local_patient(reconciled: Reconciled, outside_id: str) -> dict[str, Any]:
    """Patient columns of the chosen record: used only if the index lacks it (a reindex
    into an empty index); otherwise the record is found by (issuer, ID) and kept."""
    return {
        "patient_id": reconciled.patient_id,
        "issuer": reconciled.issuer,
        "patient_name": reconciled.name,
        "patient_name_ci": name_key(reconciled.name),
        "birth_date": reconciled.birth_date,
        "birth_time": "",
        "sex": reconciled.sex,
        "nhs_number": reconciled.nhs_number[:16],
        "other_patient_ids": outside_id,
    }


def _reconciliation(ds: Dataset, reconciled: Reconciled, trust: Trust | None) -> dict[str, Any]:
    outside = OutsidePatient.from_dataset(ds)
    return {
        "upload_id": reconciled.upload[:64],
        "outside_key": outside.key,
        "outside_patient_id": outside.patient_id[:64],
        "outside_issuer": outside.issuer[:64],
        "outside_name": outside.name,
        "outside_birth_date": outside.birth_date[:16],
        "outside_sex": outside.sex[:16],
        "trust_pk": None if trust is None else trust.pk,
        "actor": reconciled.by[:128],
        "created_at": reconciled.at,
    }


def name_key(name: str) -> str:
    """Case-insensitive form of a PN for matching (users type names in any case)."""
    return name.upper()


def _level_values(ds: Dataset, level: Level) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in stored_attributes(level):
        value = parsing.text_at(ds, attr.tag, attr.keyword, attr.vr)
        if attr.vr in ("IS", "US"):
            out[attr.column] = _int_or_none(value)
        elif attr.vr == "TM":
            out[attr.column] = normalise_time(value)
        else:
            out[attr.column] = value
    return out


def _int_or_none(value: str) -> int | None:
    try:
        return int(value.split("\\", maxsplit=1)[0].strip())
    except ValueError:
        return None


def normalise_time(value: str) -> str:
    """TM as HHMMSS[.ffffff] so string order is time order (ACR-NEMA colons removed)."""
    value = value.replace(":", "").strip()
    if not value:
        return ""
    whole, _, frac = value.partition(".")
    whole = whole.ljust(6, "0")[:6]
    return f"{whole}.{frac}" if frac else whole


def _other_ids(ds: Dataset) -> str:
    ids = [v for v in parsing.text(ds, "OtherPatientIDs").split("\\") if v]
    for item in ds.get("OtherPatientIDsSequence", None) or []:
        pid = parsing.text(item, "PatientID")
        if pid:
            ids.append(pid)
    return "\\".join(dict.fromkeys(ids))


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
    conn: Connection, records: list[InstanceRecord], cache: IndexCache
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
        patient_pk = _patient_pk(conn, record.patient, cache)
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


def _patient_pk(conn: Connection, values: dict[str, Any], cache: IndexCache) -> int:
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
            mpi.on_new_record(conn, pk)
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
