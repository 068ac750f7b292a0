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
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text

from rix.index.schema import audit_events

GENESIS = "0" * 64


def _digest(
    prev: str,
    at: float,
    kind: str,
    outcome: str,
    actor: str,
    source: str,
    study_uid: str,
    detail: str,
) -> str:
    payload = json.dumps([prev, repr(at), kind, outcome, actor, source, study_uid, detail])
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
) -> None:
    """Append one event inside the caller's transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7268431)"))  # one chain, one writer
    prev = (
        conn.execute(
            select(audit_events.c.hash).order_by(audit_events.c.id.desc()).limit(1)
        ).scalar()
        or GENESIS
    )
    at = time.time()
    body = json.dumps(detail or {}, sort_keys=True)
    conn.execute(
        insert(audit_events).values(
            at=at,
            kind=kind,
            outcome=outcome,
            actor=actor,
            source=source,
            study_uid=study_uid,
            detail=body,
            prev_hash=prev,
            hash=_digest(prev, at, kind, outcome, actor, source, study_uid, body),
        )
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainBreak:
    event_id: int
    problem: str


def verify_chain(engine: Engine) -> list[ChainBreak]:
    breaks: list[ChainBreak] = []
    prev = GENESIS
    with engine.connect() as conn:
        for row in conn.execute(select(audit_events).order_by(audit_events.c.id)):
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
            )
            if expected != row.hash:
                breaks.append(ChainBreak(event_id=row.id, problem="event was altered"))
            prev = row.hash
    return breaks
