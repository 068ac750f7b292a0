"""Append-only, hash-chained audit events.

Each row's hash covers its content and the previous row's hash, so an edited or deleted
row breaks the chain (``verify_chain``). Details never carry tokens or patient names:
study UIDs identify what was touched; who touched it is the actor.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, text

from rix.dataset import nhs
from rix.index.schema import audit_events, audit_export

GENESIS = "0" * 64


class Kind(StrEnum):
    """What was done; one event per action (PS3.15 A.5.3 names the DICOM equivalents)."""

    QUERY = "query"
    RETRIEVE = "retrieve"
    VIEW = "view"
    STORE = "store"
    STORE_DUPLICATE = "store-duplicate"
    EXPORT = "export"
    SHARE = "share"
    LOGIN = "login"
    BREAK_GLASS = "break-glass"
    ADMIN = "admin"
    TRANSFER = "transfer"  # rix sending images on its own: routing, transfers, prefetch


class Outcome(StrEnum):
    SUCCESS = "success"
    WARNING = "warning"
    REFUSED = "refused"  # the access policy or authentication said no
    FAILURE = "failure"


def _digest(
    prev: str,
    at: float,
    kind: str,
    outcome: str,
    actor: str,
    source: str,
    study_uid: str,
    detail: str,
    *region: str,
) -> str:
    fields = [prev, repr(at), kind, outcome, actor, source, study_uid, detail]
    if any(region):  # events written before the region columns existed hash without them
        fields.extend(region)
    payload = json.dumps(fields)
    return hashlib.sha256(payload.encode()).hexdigest()


def record(
    conn: Connection,
    *,
    kind: str,
    outcome: str,
    actor: str = "",
    source: str = "",
    study_uid: str = "",
    detail: dict[str, Any] | None = None,
    trust: str = "",
    patient: str = "",
    nhs_number: str = "",
) -> None:
    """Append one event inside the caller's transaction.

    ``actor`` is a user name or an AE title, ``source`` where the request came from (an
    address), ``trust`` the actor's trust; ``patient`` is ``issuer/patient ID``.
    """
    record_many(
        conn,
        [
            Entry(
                kind=kind,
                outcome=outcome,
                actor=actor,
                source=source,
                study_uid=study_uid,
                detail=detail,
                trust=trust,
                patient=patient,
                nhs_number=nhs_number,
            )
        ],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One event to append (``record``'s arguments)."""

    kind: str
    outcome: str
    actor: str = ""
    source: str = ""
    study_uid: str = ""
    detail: dict[str, Any] | None = None
    trust: str = ""
    patient: str = ""
    nhs_number: str = ""


def record_many(conn: Connection, entries: list[Entry]) -> None:
    """Append ``entries`` in order, chained, with one look-up of the chain's end and one
    INSERT: a query touching many patients is an event per patient, each findable by its
    NHS number (``search``), without a round trip per event."""
    if not entries:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7268431)"))  # one chain, one writer
    prev = (
        conn.execute(
            select(audit_events.c.hash).order_by(audit_events.c.id.desc()).limit(1)
        ).scalar()
        or GENESIS
    )
    at = time.time()
    rows = []
    for e in entries:
        body = json.dumps(e.detail or {}, sort_keys=True)
        region = (e.trust, e.patient, e.nhs_number)
        digest = _digest(prev, at, e.kind, e.outcome, e.actor, e.source, e.study_uid, body, *region)
        rows.append(
            {
                "at": at,
                "kind": e.kind,
                "outcome": e.outcome,
                "actor": e.actor,
                "source": e.source,
                "study_uid": e.study_uid,
                "detail": body,
                "trust": e.trust,
                "patient": e.patient,
                "nhs_number": e.nhs_number,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    conn.execute(insert(audit_events), rows)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainBreak:
    event_id: int
    problem: str


def verify_chain(engine: Engine) -> list[ChainBreak]:
    """Every edited or deleted event. A chain alone cannot show that its newest events were
    cut off; the audit repository's acknowledged position (``audit_export``) can, so an
    export cursor beyond the last event is reported too."""
    breaks: list[ChainBreak] = []
    prev = GENESIS
    last = 0
    with engine.connect() as conn:
        for row in conn.execute(select(audit_events).order_by(audit_events.c.id)):
            last = row.id
            if row.prev_hash != prev:
                breaks.append(ChainBreak(event_id=row.id, problem="previous event missing"))
            expected = _digest(
                row.prev_hash,
                row.at,
                row.kind,
                row.outcome,
                row.actor,
                row.source,
                row.study_uid,
                row.detail,
                row.trust,
                row.patient,
                row.nhs_number,
            )
            if expected != row.hash:
                breaks.append(ChainBreak(event_id=row.id, problem="event was altered"))
            prev = row.hash
        sent = conn.execute(select(func.max(audit_export.c.last_id))).scalar() or 0
    if sent > last:
        problem = f"events up to {sent} were sent to the audit repository but are missing here"
        breaks.append(ChainBreak(event_id=last + 1, problem=problem))
    return breaks


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    id: int
    at: float
    kind: str
    outcome: str
    actor: str
    source: str
    trust: str
    patient: str
    nhs_number: str
    study_uid: str
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]


def search(
    engine: Engine,
    *,
    patient: str = "",
    nhs_number: str = "",
    actor: str = "",
    study_uid: str = "",
    kinds: tuple[str, ...] = (),
    outcomes: tuple[str, ...] = (),
    trust: str = "",
    since: float | None = None,
    until: float | None = None,
    limit: int = 200,
) -> list[Event]:
    """Events newest first: "who accessed this patient's images" (by record or NHS
    number, which finds every trust's record of the person) and "what did this user
    access" (by actor); the status page's refusals (by outcome, of an actor's trust)."""
    query = select(audit_events).order_by(audit_events.c.id.desc()).limit(min(limit, 10_000))
    if patient:
        query = query.where(audit_events.c.patient == patient)
    if nhs_number:
        query = query.where(audit_events.c.nhs_number == nhs.normalise(nhs_number))
    if actor:
        query = query.where(audit_events.c.actor == actor)
    if study_uid:
        query = query.where(audit_events.c.study_uid == study_uid)
    if kinds:
        query = query.where(audit_events.c.kind.in_(kinds))
    if outcomes:
        query = query.where(audit_events.c.outcome.in_(outcomes))
    if trust:
        query = query.where(audit_events.c.trust == trust)
    if since is not None:
        query = query.where(audit_events.c.at >= since)
    if until is not None:
        query = query.where(audit_events.c.at < until)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        Event(
            id=r.id,
            at=r.at,
            kind=r.kind,
            outcome=r.outcome,
            actor=r.actor,
            source=r.source,
            trust=r.trust,
            patient=r.patient,
            nhs_number=r.nhs_number,
            study_uid=r.study_uid,
            detail=json.loads(r.detail or "{}"),
        )
        for r in rows
    ]
