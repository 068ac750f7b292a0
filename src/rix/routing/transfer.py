"""Patient transfers: "their scans arrive in Nottingham before they do".

When a patient moves from one trust to another (the API, ``rix transfer``, or HL7 ADT
A02), the receiving trust gets an encounter for the patient (the relationship the access
policy reads) and a ``transfer`` job, which queues one delivery per recent study to the
trust's PACS: every study of the person the receiving trust may now see, from any trust
but its own, within ``transfer_days``. ADT A12 cancels what has not been sent yet.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, select

from rix import access, audit
from rix.access import SYSTEM, Principal, checks, grounds, trail
from rix.archive import Archive
from rix.dataset import nhs
from rix.errors import Conflict
from rix.index import queries
from rix.index.database import begin_write
from rix.index.schema import jobs
from rix.jobs import queue
from rix.jobs.queue import Permanent, Priority
from rix.jobs.worker import Context
from rix.region import aes, mpi
from rix.region.trusts import Trust, get_trust
from rix.routing import deliver

KIND = "transfer"


def request(
    archive: Archive,
    principal: Principal,
    *,
    to_trust: str,
    nhs_number: str = "",
    patient: str = "",
    from_trust: str = "",
    days: int | None = None,
    priority: int = Priority.URGENT,
    reference: str = "",
) -> int:
    """Record the move and queue the transfer; returns the transfer job's id."""
    days = archive.settings.transfer_days if days is None else days
    with begin_write(archive.engine) as conn:
        trust = get_trust(conn, to_trust)
        _receiving_pacs(archive, trust)
        person = grounds.person_named(conn, nhs_number=nhs_number, patient=patient)
        checks.require_transfer(conn, principal, trust, from_trust, person)
        grounds.record_relationship(
            conn,
            SYSTEM,
            trust=trust,
            person_pk=person,
            kind="encounter",
            reference=reference or f"transfer from {from_trust or 'another trust'}",
        )
        pk = queue.enqueue(
            conn,
            KIND,
            {
                "person_pk": person,
                "to_trust": trust.code,
                "from_trust": from_trust.strip().upper(),
                "days": days,
                "requested_by": principal.name,
            },
            priority=priority,
            key=f"{KIND}:{trust.code}:{person}",
            label=f"transfer of a patient to {trust.code}",
            trust_pk=trust.pk,
        )
        trail.record_in(
            conn,
            principal,
            audit.Kind.TRANSFER,
            audit.Outcome.SUCCESS,
            trail.Touched(patient=patient, nhs_number=nhs.normalise(nhs_number)),
            {"action": "transfer requested", "to": trust.code, "from": from_trust, "job": pk},
        )
    queue.wake()
    return pk


def _receiving_pacs(archive: Archive, trust: Trust) -> aes.RemoteAE:
    if not trust.pacs_ae:
        raise Conflict(f"trust {trust.code} has no PACS: rix trust add {trust.code} --pacs AE")
    remote = aes.get(archive.engine, trust.pacs_ae)
    if remote is None:
        raise Conflict(f"{trust.pacs_ae}, the PACS of {trust.code}, is not a registered AE")
    return remote


def cancel(
    archive: Archive,
    principal: Principal,
    *,
    to_trust: str,
    nhs_number: str = "",
    patient: str = "",
) -> int:
    """Cancel a transfer (ADT A12): deliveries not yet sent are dropped; returns how many
    jobs were cancelled. What was sent stays sent."""
    with begin_write(archive.engine) as conn:
        trust = get_trust(conn, to_trust)
        person = grounds.person_named(conn, nhs_number=nhs_number, patient=patient)
        checks.require_transfer(conn, principal, trust, "", person)
        latest = conn.execute(
            select(jobs.c.id)
            .where(jobs.c.kind == KIND, jobs.c.key == f"{KIND}:{trust.code}:{person}")
            .order_by(jobs.c.id.desc())
            .limit(1)
        ).scalar()
        if latest is None:
            return 0
        cancelled = queue.cancel_tree(conn, latest)
        trail.record_in(
            conn,
            principal,
            audit.Kind.TRANSFER,
            audit.Outcome.SUCCESS,
            trail.Touched(patient=patient, nhs_number=nhs.normalise(nhs_number)),
            {"action": "transfer cancelled", "to": trust.code, "job": latest},
        )
    return cancelled


def recent_studies(
    conn: Connection, person_pk: int, trust: Trust, days: int
) -> list[dict[str, Any]]:
    """The person's studies the receiving trust may see, newest first, but its own."""
    records = mpi.records_of_person(conn, person_pk)
    receiver = Principal.of_ae(trust.pacs_ae or trust.code, trust, "transfer")
    rows = queries.studies_of_records(conn, [r.pk for r in records], scope=access.scope(receiver))
    cutoff = "" if days <= 0 else (date.today() - timedelta(days=days)).strftime("%Y%m%d")
    return [
        r
        for r in rows
        if r["trust_pk"] != trust.pk
        and (not cutoff or not r["study_date"] or r["study_date"] >= cutoff)
    ]


def run(ctx: Context) -> None:
    payload = ctx.job.payload
    with ctx.archive.engine.connect() as conn:
        trust = get_trust(conn, str(payload["to_trust"]))
        if not trust.pacs_ae:
            raise Permanent(f"trust {trust.code} has no PACS")
        studies = recent_studies(conn, int(payload["person_pk"]), trust, int(payload["days"]))
    deliver.schedule_for_trust(ctx, [r["study_uid"] for r in studies], trust, KIND)
