"""The audit trail of access: every access to patient data recorded once, here, with the
principal that made it (DESIGN.md, "Access"); ``rix.audit`` stores and exports the events.

Every event that touches a patient names the record and, where the index knows it, the
NHS number, so "who accessed this patient's images" (``rix audit search --nhs-number``) is
one indexed look-up that finds queries and refusals from every door: a query or a refused
retrieve is an event per patient its answer named (``record_query``, ``record_refused``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from threading import Lock
from typing import Any, Protocol

from sqlalchemy import Connection

from rix import audit
from rix.access import Principal
from rix.index import queries
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
    """Query events: the keys asked (the DICOM "Query" audit message carries the query
    itself), one event per patient the answer named, with the study when it named one of
    theirs; an answer naming nobody is one event about nobody."""
    keys = {m.attribute.keyword: m.value for m in matches if not m.is_universal}
    detail: dict[str, Any] = {"level": level.value, "keys": keys, "matches": len(rows)}
    studies_of: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        if row.get("PatientID") is None:
            continue
        who = (row.get("IssuerOfPatientID") or "", row["PatientID"])
        studies_of.setdefault(who, set()).add(row.get("StudyInstanceUID") or "")
    if len(studies_of) > 1:
        detail["patients"] = len(studies_of)
    about: dict[tuple[str, ...], str] = {who: _one(uids) for who, uids in studies_of.items()}
    if not about:
        uids = {r.get("StudyInstanceUID") or "" for r in rows}
        record(
            submit,
            principal,
            audit.Kind.QUERY,
            audit.Outcome.SUCCESS,
            Touched(study_uid=_one(uids)),
            detail,
        )
        return
    submit(
        lambda conn: _record_about(
            conn, principal, audit.Kind.QUERY, audit.Outcome.SUCCESS, about, detail
        )
    )


def record_refused(
    submit: Submit,
    principal: Principal,
    kind: audit.Kind,
    hidden: Sequence[dict[str, Any]],
    detail: dict[str, Any],
) -> None:
    """A refused read of what ``hidden`` (query answer rows the principal may not see)
    names: one event per study, or per patient for rows without one, each with the NHS
    number of the record, as a refused HTTP read names it (``rix.web.auth``)."""
    about: dict[tuple[str, ...], str] = {
        (row.get("IssuerOfPatientID") or "", row.get("PatientID") or "", study_uid): study_uid
        for row in hidden
        for study_uid in [row.get("StudyInstanceUID") or ""]
    }
    refused = audit.Outcome.REFUSED
    submit(lambda conn: _record_about(conn, principal, kind, refused, about, detail))


def _one(uids: set[str]) -> str:
    found = uids - {""}
    return next(iter(found)) if len(found) == 1 else ""


def _record_about(
    conn: Connection,
    principal: Principal,
    kind: audit.Kind,
    outcome: audit.Outcome,
    about: dict[tuple[str, ...], str],
    detail: dict[str, Any],
) -> None:
    """One event per key of ``about`` (issuer, patient ID, ...) → study UID, the records
    and their NHS numbers looked up in the writer's transaction, all appended at once."""
    refs = queries.patients_by_ref(conn, {(key[0], key[1]) for key in about})
    entries = []
    for (issuer, patient_id, *_), study_uid in about.items():
        ref = refs.get((issuer, patient_id))
        entries.append(
            audit.Entry(
                kind=kind.value,
                outcome=outcome.value,
                actor=principal.name,
                source=principal.source,
                study_uid=study_uid,
                detail=detail,
                trust=principal.trust_code,
                patient=f"{issuer}/{patient_id}",
                nhs_number="" if ref is None else ref.nhs_number,
            )
        )
    audit.record_many(conn, entries)
