"""Outside media into a trust's own records: scan, reconcile, store through the one ingest.

A clerk uploads a CD or zip from another hospital (``rix.uploads``). Before anything is
stored, ``scan`` lists the outside patients on it with their studies; the clerk chooses,
for each, a patient record of their own trust (``candidates`` searches them) or skips it.
``start_store`` then queues a job that stores every instance through ``ingest`` as the
trust's, with the bytes as received, indexed under the chosen local record
(``records.Reconciled``). The choice is kept twice: in the index (``reconciliations``, and
the local record lists the outside ID among its Other Patient IDs) and in each stored
file's meta, so ``rix reindex`` keeps it (DESIGN.md: the store is the truth).

An outside patient is never stored under its own ID: an ID without an issuer on a CD from
elsewhere would otherwise be taken for the same number at this trust (dcm4chee-arc-light
#1991), so every outside patient must be reconciled or skipped, by a person.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import ColumnElement, Connection, and_, or_, select

from rix import audit
from rix.access import Principal, PrincipalKind, checks, trail
from rix.archive import Archive
from rix.dataset import nhs, parsing
from rix.errors import Conflict, NotFound, RixError
from rix.index import records
from rix.index.database import begin_write
from rix.index.schema import patients, studies
from rix.ingest import identify, importer, media, received_from_file, uploads
from rix.jobs import queue
from rix.jobs.worker import Context
from rix.region import mpi, trusts
from rix.region.trusts import Trust

log = structlog.get_logger(__name__)

KIND = "import-store"
EXPIRE_KIND = "import-expire"
SKIP = "skip"
CANDIDATES = 25
TOUCH_EVERY = 60.0  # seconds: a storing upload is touched so the sweep leaves it alone


# --- scanning ------------------------------------------------------------------------------


@dataclass
class _Found:
    """One outside patient while scanning: who, and their studies' instances."""

    outside: records.OutsidePatient
    nhs_number: str
    studies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, ds: Any, study_uid: str, series_uid: str) -> None:
        study = self.studies.setdefault(
            study_uid,
            {
                "study_uid": study_uid,
                "date": parsing.text(ds, "StudyDate"),
                "description": parsing.text(ds, "StudyDescription"),
                "accession": parsing.text(ds, "AccessionNumber"),
                "modalities": [],
                "series": [],
                "instances": 0,
            },
        )
        modality = parsing.text(ds, "Modality")
        if modality and modality not in study["modalities"]:
            study["modalities"].append(modality)
        if series_uid not in study["series"]:
            study["series"].append(series_uid)
        study["instances"] += 1

    def as_json(self, suggested: list[str]) -> dict[str, Any]:
        studies_out = [
            {**s, "series": len(s["series"]), "modalities": sorted(s["modalities"])}
            for s in sorted(self.studies.values(), key=lambda s: (s["date"], s["study_uid"]))
        ]
        return {
            "key": self.outside.key,
            "patient_id": self.outside.patient_id,
            "issuer": self.outside.issuer,
            "name": self.outside.name,
            "birth_date": self.outside.birth_date,
            "sex": self.outside.sex,
            "nhs_number": self.nhs_number,
            "suggested": suggested,  # own-trust records with the same valid NHS number
            "studies": studies_out,
            "instances": sum(s["instances"] for s in studies_out),
        }


def upload_paths(base: Path, session: uploads.Session) -> list[tuple[str, Path]]:
    return [(f.name, uploads.file_path(base, session, n)) for n, f in enumerate(session.files)]


def _scan_one(
    reader: media.Reader, item: media.Item, trust: Trust
) -> tuple[parsing.Header, dict[str, Any]] | importer.Result:
    """The candidate's header and the item as JSON, or why it is not an instance."""
    data = importer.readable(reader, item)
    if isinstance(data, importer.Result):
        return data
    try:
        received = received_from_file(data, source="import", trust=trust)
        header = parsing.read_header(received.dataset, received.transfer_syntax)
        ident = identify(header, received)
    except RixError as exc:
        return importer.Result(outcome=importer.FileOutcome.REFUSED, reason=exc.reason)
    entry = {
        "file": item.file,
        "member": item.member,
        "label": item.label,
        "study": ident.study_uid,
        "series": ident.series_uid,
    }
    return header, entry


def scan(
    archive: Archive, principal: Principal, *, base: Path, session: uploads.Session
) -> dict[str, Any]:
    """Read every candidate's header; the outside patients and their studies, what is
    refused (with the reason) and what is skipped. Kept in the session for the store."""
    trust = checks.require_import(principal)
    if not uploads.complete(base, session):
        missing = [
            f"{f.name} ({got} of {f.size} bytes)"
            for f, got in zip(session.files, uploads.received(base, session), strict=True)
            if got != f.size
        ]
        raise Conflict("not every file has arrived: " + "; ".join(missing[:5]))
    found: dict[str, _Found] = {}
    problems = importer.Summary()
    result: dict[str, Any] = {"items": []}
    paths = upload_paths(base, session)
    with media.Reader(paths) as reader:
        for item in media.items(paths):
            scanned = _scan_one(reader, item, trust)
            if isinstance(scanned, importer.Result):
                problems.add(item.label, scanned)
                continue
            header, entry = scanned
            ds = header.dataset
            outside = records.OutsidePatient.from_dataset(ds)
            patient = found.setdefault(
                outside.key, _Found(outside=outside, nhs_number=nhs.in_dataset(ds).value)
            )
            patient.add(ds, entry["study"], entry["series"])
            result["items"].append({**entry, "key": outside.key})
    unstored = problems.as_json()
    result.update(refused=unstored["refused"], skipped=unstored["skipped"])
    with archive.engine.connect() as conn:
        result["patients"] = [
            p.as_json(_suggested(conn, trust, p.nhs_number)) for p in found.values()
        ]
    trail.record(
        archive.writer.post,
        principal,
        audit.Kind.QUERY,
        audit.Outcome.SUCCESS,
        None,
        {"import": session.id, "scan": {"outside_patients": len(found)}},
    )
    return result


def public(scan_result: dict[str, Any] | None) -> dict[str, Any] | None:
    """The scan as the API shows it: the per-item list is the store's, not the user's."""
    if scan_result is None:
        return None
    return {
        "patients": scan_result["patients"],
        "instances": len(scan_result["items"]),
        "refused": scan_result["refused"],
        "skipped": scan_result["skipped"],
    }


def _suggested(conn: Connection, trust: Trust, nhs_number: str) -> list[str]:
    if not nhs.is_valid(nhs_number):
        return []
    rows = conn.execute(
        select(patients.c.issuer, patients.c.patient_id).where(
            patients.c.issuer == trust.issuer, patients.c.nhs_number == nhs.normalise(nhs_number)
        )
    )
    return [f"{r.issuer}/{r.patient_id}" for r in rows]


# --- choosing the local record ---------------------------------------------------------------


def candidates(
    archive: Archive, principal: Principal, *, query: str, upload_id: str
) -> list[dict[str, Any]]:
    """Records of the user's own trust matching ``query``: an NHS number, a hospital
    number, a birth date (YYYYMMDD or YYYY-MM-DD) and/or words starting the name."""
    trust = checks.require_import(principal)
    condition = _matching(query)
    if condition is None:
        return []
    with archive.engine.connect() as conn:
        rows = conn.execute(
            select(patients)
            .where(patients.c.issuer == trust.issuer, condition)
            .order_by(patients.c.patient_name_ci, patients.c.id)
            .limit(CANDIDATES)
        ).all()
    trail.record(
        archive.writer.post,
        principal,
        audit.Kind.QUERY,
        audit.Outcome.SUCCESS,
        None,
        {"import": upload_id, "candidates": query[:64], "matches": len(rows)},
    )
    return [
        {
            "patient": f"{r.issuer}/{r.patient_id}",
            "patient_id": r.patient_id,
            "issuer": r.issuer,
            "name": r.patient_name,
            "birth_date": r.birth_date,
            "sex": r.sex,
            "nhs_number": r.nhs_number,
            "studies": r.num_studies,
        }
        for r in rows
    ]


def _matching(query: str) -> ColumnElement[bool] | None:
    if nhs.is_valid(query):  # people write NHS numbers as 943 476 5919
        return or_(patients.c.nhs_number == nhs.normalise(query), patients.c.patient_id == query)
    terms: list[ColumnElement[bool]] = []
    words = []
    for token in query.replace(",", " ").split():
        date = _as_date(token)
        if date:
            terms.append(patients.c.birth_date == date)
        elif nhs.is_valid(token):
            number = nhs.normalise(token)
            terms.append(or_(patients.c.nhs_number == number, patients.c.patient_id == token))
        else:
            words.append(token)
    if words:
        terms.append(or_(_name_starts(words), patients.c.patient_id == " ".join(words)))
    return and_(*terms) if terms else None


def _as_date(token: str) -> str:
    """YYYYMMDD or YYYY-MM-DD as a DA value; '' for anything else (a hospital number)."""
    date = token.replace("-", "")
    dashes = token.count("-")
    if len(date) == 8 and date.isdigit() and dashes in (0, 2) and date[:2] in ("18", "19", "20"):
        return date
    return ""


def _name_starts(words: list[str]) -> ColumnElement[bool]:
    """Every word starts a component of the name (``ada hart`` finds HART^ADA)."""
    col = patients.c.patient_name_ci
    terms = []
    for word in words:
        stem = word.upper().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        terms.append(or_(*(col.like(p + stem + "%", escape="\\") for p in ("", "%^", "% "))))
    return and_(*terms)


def check_choices(
    conn: Connection, trust: Trust, scan_result: dict[str, Any], choices: dict[str, str]
) -> dict[str, mpi.Record]:
    """Every outside patient reconciled to a record of the user's trust, or skipped."""
    keys = {p["key"] for p in scan_result["patients"]}
    unknown = set(choices) - keys
    if unknown:
        raise Conflict(f"no outside patient {sorted(unknown)[0]!r} in this upload")
    missing = keys - set(choices)
    if missing:
        raise Conflict(
            f"{len(missing)} outside patient(s) not reconciled: choose a record of "
            f"{trust.code} or skip each"
        )
    chosen = {}
    for key, ref in choices.items():
        if ref == SKIP:
            continue
        record = mpi.find_record(conn, ref)
        checks.require_own_record(trust, record.issuer, ref)
        chosen[key] = record
    if not chosen:
        raise Conflict("every outside patient is skipped: nothing to store")
    return chosen


def start_store(
    archive: Archive,
    principal: Principal,
    *,
    base: Path,
    session: uploads.Session,
    choices: dict[str, str],
) -> uploads.Session:
    """Check the choices and queue the store job; the upload is ``storing`` from now.
    The upload changes state inside the job's transaction: a second request, or a
    failed commit, leaves one job or none, never two."""
    trust = checks.require_import(principal)
    if session.scan is None or session.state is not uploads.State.SCANNED:
        raise Conflict("scan the upload before storing it")
    scanned = session.scan
    with begin_write(archive.engine) as conn:
        chosen = check_choices(conn, trust, scanned, choices)
        job = queue.enqueue(
            conn,
            KIND,
            {"upload": session.id},
            priority=queue.Priority.URGENT,  # a clerk is watching the progress bar
            label="import of outside media",
            trust_pk=trust.pk,
        )
        for key, record in chosen.items():
            outside = next(p for p in scanned["patients"] if p["key"] == key)
            trail.record_in(
                conn,
                principal,
                audit.Kind.STORE,
                audit.Outcome.SUCCESS,
                trail.Touched(patient=record.ref, nhs_number=record.nhs_number),
                {
                    "import": session.id,
                    "reconciled": {
                        "outside_patient_id": outside["patient_id"],
                        "outside_issuer": outside["issuer"],
                    },
                },
            )
        uploads.transition(
            base, session.id, (uploads.State.SCANNED,), state=uploads.State.STORING, choices=choices
        )
    queue.wake()
    return uploads.update(base, session.id, job=job)


# --- storing (the job) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    """What the job needs for each item: the chosen record per outside key, and the
    studies already in the archive under another record (never joined silently)."""

    trust: Trust
    reconciled: dict[str, records.Reconciled]
    held_elsewhere: frozenset[str]


def _plan(conn: Connection, session: uploads.Session, at: float) -> _Plan:
    trust = trusts.get_trust(conn, session.trust)
    reconciled = {}
    pks = {}
    for key, ref in session.choices.items():
        if ref == SKIP:
            continue
        rec = mpi.find_record(conn, ref)
        pks[key] = rec.pk
        reconciled[key] = records.Reconciled(
            patient_id=rec.patient_id,
            issuer=rec.issuer,
            name=rec.name,
            birth_date=rec.birth_date,
            sex=rec.sex,
            nhs_number=rec.nhs_number,
            upload=session.id,
            by=session.owner,
            at=at,
        )
    assert session.scan is not None
    wanted = {(i["study"], pks[i["key"]]) for i in session.scan["items"] if i["key"] in pks}
    held = conn.execute(
        select(studies.c.study_uid, studies.c.patient_pk).where(
            studies.c.study_uid.in_({uid for uid, _pk in wanted})
        )
    ).all()
    elsewhere = frozenset(r.study_uid for r in held if (r.study_uid, r.patient_pk) not in wanted)
    return _Plan(trust=trust, reconciled=reconciled, held_elsewhere=elsewhere)


def _store_one(
    archive: Archive,
    reader: media.Reader,
    item: dict[str, Any],
    plan: _Plan,
    tally: trail.StoreTally,
) -> importer.Result:
    reconciled = plan.reconciled.get(item["key"])
    if reconciled is None:
        return importer.Result(
            outcome=importer.FileOutcome.SKIPPED, reason="outside patient skipped by the user"
        )
    if item["study"] in plan.held_elsewhere:
        return importer.Result(
            outcome=importer.FileOutcome.REFUSED,
            reason="the study is already held under another patient record",
        )
    candidate = media.Item(file=item["file"], member=item["member"], label=item["label"])
    return importer.import_one(
        archive, reader, candidate, trust=plan.trust, tally=tally, reconciled=reconciled
    )


def run(ctx: Context) -> None:
    """The store job: every scanned item through ``ingest``, progress as it goes, then
    the summary in the upload, the audit events, and the upload's files deleted."""
    archive = ctx.archive
    base = uploads.root(archive.settings.data)
    try:
        session = uploads.load(base, str(ctx.job.payload["upload"]))
    except NotFound:
        raise queue.Permanent("the upload is gone (deleted or expired)") from None
    if session.state is uploads.State.DONE:
        return
    assert session.scan is not None
    with archive.engine.connect() as conn:
        plan = _plan(conn, session, ctx.job.created_at)
    principal = Principal(
        kind=PrincipalKind.USER,
        name=session.owner,
        source="import",
        trust=plan.trust,
        user_pk=session.user_pk,
    )
    # what the scan could not read is part of the summary too: one account of the media
    summary = importer.Summary.from_json(session.scan)
    tally = trail.StoreTally()
    items = session.scan["items"]
    touched = time.monotonic()
    try:
        with media.Reader(upload_paths(base, session)) as reader:
            stored = _stored(archive, reader, items, plan, tally)
            for done, (item, result) in enumerate(stored):
                summary.add(item["label"], result)
                ctx.progress(done + 1, len(items))
                if time.monotonic() - touched > TOUCH_EVERY:
                    uploads.update(base, session.id)
                    touched = time.monotonic()
    finally:  # what was stored is audited, even when the job is cancelled midway
        tally.record(archive.writer.submit, principal)
    uploads.update(base, session.id, state=uploads.State.DONE, summary=summary.as_json())
    uploads.discard_files(base, session.id)
    ctx.progress(len(items), len(items), force=True)
    log.info("import stored", upload=session.id, stored=summary.stored)


def _stored(
    archive: Archive,
    reader: media.Reader,
    items: list[dict[str, Any]],
    plan: _Plan,
    tally: trail.StoreTally,
) -> Iterator[tuple[dict[str, Any], importer.Result]]:
    """Items with their outcome, in order; ingests overlap (group commit, fsyncs). When
    the caller stops early (the job was cancelled) the items not yet begun never are."""
    pool = ThreadPoolExecutor(max_workers=importer.WORKERS)
    try:
        outcomes = pool.map(lambda i: _store_one(archive, reader, i, plan, tally), items)
        yield from zip(items, outcomes, strict=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --- expiry ----------------------------------------------------------------------------------


def schedule_expiry(archive: Archive) -> None:
    """Sweep now, and again once an upload begun now could have expired."""
    hours = archive.settings.import_expiry_hours
    uploads.sweep(uploads.root(archive.settings.data), hours)
    with begin_write(archive.engine) as conn:
        queue.enqueue(
            conn,
            EXPIRE_KIND,
            {},
            key=EXPIRE_KIND,
            run_at=time.time() + hours * 3600 + 60,
            label="delete expired browser imports",
        )


def expire(ctx: Context) -> None:
    """The expiry job: delete uploads unchanged for ``import_expiry_hours``."""
    settings = ctx.archive.settings
    gone = uploads.sweep(uploads.root(settings.data), settings.import_expiry_hours)
    if gone:
        log.info("expired imports deleted", uploads=len(gone))
