"""Adding instances to the index: patient, study, series and instance rows with counters.

Runs inside the group-commit transaction of ``index.writer``; each call is wrapped in a
savepoint so one bad instance never fails its neighbours in the batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import Connection, insert, select, update

from rix import parsing
from rix.index.attributes import Level, stored_attributes
from rix.index.schema import instance_conflicts, instances, patients, series, studies


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceRecord:
    """Everything the index keeps about one stored instance."""

    patient: dict[str, Any]
    study: dict[str, Any]
    series: dict[str, Any]
    instance: dict[str, Any]
    received_at: float = field(default_factory=time.time)

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
    ) -> InstanceRecord:
        values = {level: _level_values(ds, level) for level in Level}
        patient = values[Level.PATIENT]
        patient["patient_name_ci"] = name_key(patient["patient_name"])
        patient["other_patient_ids"] = _other_ids(ds)
        study = values[Level.STUDY]
        study["referring_physician_name_ci"] = name_key(study["referring_physician_name"])
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
        )


def name_key(name: str) -> str:
    """Case-insensitive form of a PN for matching (users type names in any case)."""
    return name.upper()


def _level_values(ds: Dataset, level: Level) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in stored_attributes(level):
        value = parsing.text(ds, attr.keyword)
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
        select(instances.c.sha256, instances.c.storage_key, instances.c.size, studies.c.study_uid)
        .join(series, series.c.id == instances.c.series_pk)
        .join(studies, studies.c.id == series.c.study_pk)
        .where(instances.c.sop_uid == sop_uid)
    ).first()
    if row is None:
        return None
    return Existing(
        sha256=row.sha256, storage_key=row.storage_key, study_uid=row.study_uid, size=row.size
    )


def add_instance(conn: Connection, record: InstanceRecord) -> AddResult:
    """Insert the instance and whatever patient/study/series rows it is the first of."""
    existing = find_instance(conn, record.sop_uid)
    if existing is not None:
        return AddResult(outcome=AddOutcome.EXISTS, existing=existing)
    now = record.received_at
    patient_pk = _patient_pk(conn, record.patient)
    study_pk, new_study = _study_pk(conn, record.study, patient_pk, now)
    series_pk, new_series = _series_pk(conn, record.series, study_pk, now)
    conn.execute(insert(instances).values(series_pk=series_pk, received_at=now, **record.instance))
    conn.execute(
        update(series)
        .where(series.c.id == series_pk)
        .values(num_instances=series.c.num_instances + 1, updated_at=now)
    )
    _touch_study(conn, study_pk, record, new_series=new_series, now=now)
    conn.execute(
        update(patients)
        .where(patients.c.id == patient_pk)
        .values(
            num_instances=patients.c.num_instances + 1,
            num_series=patients.c.num_series + int(new_series),
            num_studies=patients.c.num_studies + int(new_study),
        )
    )
    return AddResult(outcome=AddOutcome.ADDED)


def _patient_pk(conn: Connection, values: dict[str, Any]) -> int:
    pk = conn.execute(
        select(patients.c.id).where(
            patients.c.issuer == values["issuer"], patients.c.patient_id == values["patient_id"]
        )
    ).scalar()
    if pk is not None:
        return int(pk)
    return _new_pk(conn.execute(insert(patients).values(**values)).inserted_primary_key)


def _study_pk(
    conn: Connection, values: dict[str, Any], patient_pk: int, now: float
) -> tuple[int, bool]:
    pk = conn.execute(
        select(studies.c.id).where(studies.c.study_uid == values["study_uid"])
    ).scalar()
    if pk is not None:
        return int(pk), False
    result = conn.execute(
        insert(studies).values(patient_pk=patient_pk, created_at=now, updated_at=now, **values)
    )
    return _new_pk(result.inserted_primary_key), True


def _series_pk(
    conn: Connection, values: dict[str, Any], study_pk: int, now: float
) -> tuple[int, bool]:
    pk = conn.execute(
        select(series.c.id).where(series.c.series_uid == values["series_uid"])
    ).scalar()
    if pk is not None:
        return int(pk), False
    result = conn.execute(insert(series).values(study_pk=study_pk, updated_at=now, **values))
    return _new_pk(result.inserted_primary_key), True


def _new_pk(key: Any) -> int:
    assert key is not None
    return int(key[0])


def _merge_list(stored: str, value: str) -> str:
    if not value:
        return stored
    items = set(filter(None, stored.split("\\")))
    if value in items:
        return stored
    return "\\".join(sorted(items | {value}))


def _touch_study(
    conn: Connection, study_pk: int, record: InstanceRecord, *, new_series: bool, now: float
) -> None:
    row = conn.execute(
        select(studies.c.modalities, studies.c.sop_classes).where(studies.c.id == study_pk)
    ).one()
    conn.execute(
        update(studies)
        .where(studies.c.id == study_pk)
        .values(
            num_instances=studies.c.num_instances + 1,
            num_series=studies.c.num_series + int(new_series),
            modalities=_merge_list(row.modalities, record.series["modality"]),
            sop_classes=_merge_list(row.sop_classes, record.instance["sop_class_uid"]),
            updated_at=now,
        )
    )


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
