"""Index rows from a received dataset: what the patient, study, series and instance
rows of one instance will hold, computed before any transaction (``InstanceRecord``).

Kept apart from ``write`` so that building a record needs no database: ingest builds it
in the association's thread, the group-commit writer only inserts it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydicom.dataset import Dataset

from rix.dataset import nhs, parsing
from rix.index.attributes import Level, stored_attributes


class Owner(Protocol):
    """The trust an instance belongs to, as the index needs it (``rix.region.trusts.Trust``
    is one): the index sits below the region and knows trusts only by key and issuer."""

    @property
    def pk(self) -> int: ...

    @property
    def issuer(self) -> str: ...


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
        trust: Owner | None = None,
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


def _reconciliation(ds: Dataset, reconciled: Reconciled, trust: Owner | None) -> dict[str, Any]:
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
