"""The audit trail of access: every access to patient data recorded once, here, with the
principal that made it (DESIGN.md, "Access"); ``rix.audit`` stores and exports the events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from threading import Lock
from typing import Any, Protocol

from sqlalchemy import Connection

from rix import audit
from rix.access import Principal
from rix.index.attributes import Level
from rix.index.queries import Match


@dataclass(frozen=True, slots=True, kw_only=True)
class Touched:
    """Which patient and study an event is about (PS3.15 A.5 participant objects)."""

    study_uid: str = ""
    patient: str = ""  # issuer/patient ID
    nhs_number: str = ""


Submit = Callable[[Callable[[Connection], Any]], Any]


def record(
    submit: Submit,
    principal: Principal,
    kind: audit.Kind,
    outcome: audit.Outcome,
    touched: Touched | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write one audit event through the index writer: ``IndexWriter.submit`` commits it
    before the caller answers, ``IndexWriter.post`` in the next group commit."""
    submit(lambda conn: record_in(conn, principal, kind, outcome, touched, detail))


def record_in(
    conn: Connection,
    principal: Principal,
    kind: audit.Kind,
    outcome: audit.Outcome,
    touched: Touched | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """One audit event in the caller's transaction: for a change that must commit with
    its own record (``rix.admin.region``)."""
    touched = touched or Touched()
    audit.record(
        conn,
        kind=kind.value,
        outcome=outcome.value,
        actor=principal.name,
        source=principal.source,
        study_uid=touched.study_uid,
        detail=detail,
        trust=principal.trust_code,
        patient=touched.patient,
        nhs_number=touched.nhs_number,
    )


def record_login(
    submit: Submit, principal: Principal, outcome: audit.Outcome, via: str, **detail: str
) -> None:
    """One sign-in attempt, from any door (login page, bearer token, DICOM user identity)."""
    record(submit, principal, audit.Kind.LOGIN, outcome, None, {"via": via, **detail})


class Stored(Protocol):
    """What the tally needs of one stored instance (``rix.ingest.IngestResult`` is one):
    access sits below ingest, so it names the fields, not the class."""

    @property
    def study_uid(self) -> str: ...
    @property
    def patient(self) -> str: ...  # issuer/patient ID as indexed
    @property
    def nhs_number(self) -> str: ...


@dataclass(slots=True, kw_only=True)
class StudyTally:
    """The instances of one study stored so far, and whose they are."""

    patient: str
    nhs_number: str
    instances: int = 0


@dataclass
class StoreTally:
    """What one association or request stored, per study, until it is audited once."""

    studies: dict[str, StudyTally] = field(default_factory=dict)  # by study UID
    failures: list[str] = field(default_factory=list)
    lock: Lock = field(default_factory=Lock)  # an import stores from several threads

    def stored(self, result: Stored) -> None:
        with self.lock:
            entry = self.studies.setdefault(
                result.study_uid,
                StudyTally(patient=result.patient, nhs_number=result.nhs_number),
            )
            entry.instances += 1

    def failed(self, reason: str) -> None:
        with self.lock:
            self.failures.append(reason[:200])

    def record(self, submit: Submit, principal: Principal) -> None:
        for study_uid, study in self.studies.items():
            touched = Touched(
                study_uid=study_uid, patient=study.patient, nhs_number=study.nhs_number
            )
            record(
                submit,
                principal,
                audit.Kind.STORE,
                audit.Outcome.SUCCESS,
                touched,
                {"instances": study.instances},
            )
        if self.failures:
            record(
                submit,
                principal,
                audit.Kind.STORE,
                audit.Outcome.FAILURE,
                None,
                {"failed": len(self.failures), "reasons": sorted(set(self.failures))[:10]},
            )
        self.studies.clear()
        self.failures.clear()


def record_query(
    submit: Submit,
    principal: Principal,
    level: Level,
    matches: Sequence[Match],
    rows: Sequence[dict[str, Any]],
) -> None:
    """One query event: the keys asked (the DICOM "Query" audit message carries the query
    itself) and, when the answer names one study or one patient, who it was about."""
    keys = {m.attribute.keyword: m.value for m in matches if not m.is_universal}
    studies_found = {r.get("StudyInstanceUID", "") for r in rows} - {""}
    patients_found = {(r.get("IssuerOfPatientID", ""), r.get("PatientID", "")) for r in rows}
    touched = Touched()
    if len(studies_found) == 1:
        touched = Touched(study_uid=next(iter(studies_found)))
    if len(patients_found) == 1:
        issuer, patient_id = next(iter(patients_found))
        touched = Touched(study_uid=touched.study_uid, patient=f"{issuer}/{patient_id}")
    detail = {"level": level.value, "keys": keys, "matches": len(rows)}
    record(submit, principal, audit.Kind.QUERY, audit.Outcome.SUCCESS, touched, detail)
