"""Delivering a study to a destination: the ``send`` job.

Idempotent: what the destination acknowledged is recorded in ``deliveries`` as it goes
(every few seconds, with the job's progress), and a retried or repeated delivery sends
only the rest. A crash between an acknowledgement and its record re-sends that instance,
which a DICOM receiver stores once (same SOP Instance UID): the only repeat there is.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from rix import audit
from rix.access import EVERYTHING, SYSTEM, trail
from rix.index import queries
from rix.index.attributes import BY_KEYWORD
from rix.index.database import begin_write
from rix.index.schema import deliveries
from rix.jobs import queue
from rix.jobs.queue import Permanent
from rix.jobs.worker import Context
from rix.region import aes, identity
from rix.region.trusts import Trust
from rix.routing import cstore, stow
from rix.routing.rules import Destination

KIND = "send"


def schedule(
    conn: Connection,
    *,
    study_uid: str,
    destination: Destination,
    priority: int,
    reason: str,
    requested_by: str = "rix",
    parent_pk: int | None = None,
    trust_pk: int | None = None,
) -> int:
    """Queue the delivery of a study; one pending delivery per study and destination."""
    return queue.enqueue(
        conn,
        KIND,
        {
            "study_uid": study_uid,
            "destination": destination.as_dict(),
            "reason": reason,
            "requested_by": requested_by,
        },
        priority=priority,
        key=f"{KIND}:{_digest(destination)}:{study_uid}",
        label=f"send study {study_uid} to {destination.key}",
        parent_pk=parent_pk,
        trust_pk=trust_pk,
    )


def schedule_for_trust(
    parent: Context, study_uids: Sequence[str], trust: Trust, reason: str
) -> None:
    """A transfer's or prefetch's deliveries: each study to the trust's PACS, as children
    of the job that chose them (its progress is theirs), at its priority; committed
    before the parent reports (a report is a write transaction of its own)."""
    with begin_write(parent.archive.engine) as conn:
        for study_uid in study_uids:
            schedule(
                conn,
                study_uid=study_uid,
                destination=Destination(ae=trust.pacs_ae),
                priority=parent.job.priority,
                reason=f"{reason} job {parent.job.pk}",
                requested_by=str(parent.job.payload.get("requested_by", "")),
                parent_pk=parent.job.pk,
                trust_pk=trust.pk,
            )
    parent.progress(len(study_uids), len(study_uids), force=True)


def _digest(destination: Destination) -> str:
    """The destination in a job key: a STOW URL can be longer than the key column."""
    text = f"{destination.key}|{destination.transfer_syntax}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def run(ctx: Context) -> None:
    payload = ctx.job.payload
    destination = Destination(**payload["destination"])
    study_uid = str(payload["study_uid"])
    engine = ctx.archive.engine
    with engine.connect() as conn:
        match = queries.Match(attribute=BY_KEYWORD["StudyInstanceUID"], value=study_uid)
        stored = queries.stored_instances(conn, [match], scope=EVERYTHING)
        if not stored:
            raise Permanent(f"study {study_uid} is not in the archive")
        already = acknowledged(conn, destination.key, [s.sop_uid for s in stored])
        trust, remote = _destination_trust(ctx, destination)
        outgoing = identity.outgoing(conn, stored, trust)
    todo = [s for s in stored if s.sop_uid not in already]
    tally = _Tally(ctx, destination.key, total=len(stored), done=len(stored) - len(todo))
    tally.report(force=True)
    refused: list[tuple[str, int]] = []
    try:
        if todo and remote is not None:
            sent = cstore.send(
                ctx.archive,
                remote,
                todo,
                outgoing,
                transfer_syntax=destination.transfer_syntax,
                on_delivered=tally.delivered,
            )
            refused = sent.refused
        elif todo:
            refused = stow.send(
                ctx.archive, destination, todo, outgoing, on_delivered=tally.delivered
            )
    finally:
        tally.report(force=True)
        _audit(ctx, destination, stored, tally.sent, refused)
    if refused:
        codes = ", ".join(sorted({f"0x{status:04X}" for _uid, status in refused}))
        raise RuntimeError(f"{destination.key} refused {len(refused)} instances ({codes})")


def acknowledged(conn: Connection, destination: str, sop_uids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(sop_uids), 5000):
        chunk = list(sop_uids[start : start + 5000])
        found.update(
            conn.execute(
                select(deliveries.c.sop_uid).where(
                    deliveries.c.destination == destination, deliveries.c.sop_uid.in_(chunk)
                )
            ).scalars()
        )
    return found


def _destination_trust(
    ctx: Context, destination: Destination
) -> tuple[Trust | None, aes.RemoteAE | None]:
    if not destination.ae:
        return None, None
    remote = aes.get(ctx.archive.engine, destination.ae)
    if remote is None:
        raise Permanent(f"{destination.ae} is not a registered AE")
    return remote.trust, remote


class _Tally:
    """Acknowledged instances, written to ``deliveries`` with the job's progress."""

    def __init__(self, ctx: Context, destination: str, total: int, done: int) -> None:
        self.ctx, self.destination, self.total, self.done = ctx, destination, total, done
        self.unwritten: list[str] = []
        self.sent = 0

    def delivered(self, item: queries.StoredInstance) -> None:
        self.unwritten.append(item.sop_uid)
        self.done += 1
        self.sent += 1
        self.report()

    def report(self, force: bool = False) -> None:
        self.ctx.progress(self.done, self.total, also=self._write, force=force)

    def _write(self, conn: Connection) -> None:
        if not self.unwritten:
            return
        dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
        now = time.time()
        rows = [
            {
                "destination": self.destination,
                "sop_uid": uid,
                "job_pk": self.ctx.job.pk,
                "delivered_at": now,
            }
            for uid in self.unwritten
        ]
        conn.execute(dialect.insert(deliveries).on_conflict_do_nothing(), rows)
        self.unwritten = []


def _audit(
    ctx: Context,
    destination: Destination,
    stored: Sequence[queries.StoredInstance],
    sent: int,
    refused: list[tuple[str, int]],
) -> None:
    """One event per attempt that sent anything, or failed to: images left rix."""
    if not sent and not refused:
        return
    with ctx.archive.engine.connect() as conn:
        ref = queries.patients_by_pk(conn, {stored[0].patient_pk}).get(stored[0].patient_pk)
    outcome = audit.Outcome.SUCCESS if not refused else audit.Outcome.FAILURE
    trail.record(
        ctx.archive.writer.submit,
        SYSTEM,
        audit.Kind.TRANSFER,
        outcome,
        trail.Touched(
            study_uid=stored[0].study_uid,
            patient="" if ref is None else ref.ref,
            nhs_number="" if ref is None else ref.nhs_number,
        ),
        {
            "destination": destination.key,
            "instances": sent,
            "refused": len(refused),
            "job": ctx.job.pk,
            "reason": ctx.job.payload.get("reason", ""),
            "requested_by": ctx.job.payload.get("requested_by", ""),
        },
    )
