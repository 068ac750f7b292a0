"""Prefetch: a patient's relevant priors ready at a trust before they are needed.

Scheduled by the workflow (an order at trust B for a patient with images elsewhere) or
the API; the same machinery as transfers: each prior the trust may see (same modality or
body part, the last N) is delivered to the trust's PACS, or, for a trust without one,
read once so that its first viewing is served warm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from rix import audit
from rix.access import EVERYTHING, Principal, checks, grounds, trail
from rix.archive import Archive
from rix.dataset import nhs
from rix.index import queries
from rix.index.attributes import BY_KEYWORD
from rix.index.database import begin_write
from rix.index.schema import series, studies
from rix.jobs import queue
from rix.jobs.queue import Priority
from rix.jobs.worker import Context
from rix.region.trusts import Trust, get_trust
from rix.routing import deliver, transfer

KIND = "prefetch"
CHUNK = 1 << 20


def schedule(
    conn: Connection,
    *,
    person_pk: int,
    trust: Trust,
    modalities: Sequence[str] = (),
    body_parts: Sequence[str] = (),
    last: int | None = 3,
    priority: int = Priority.ROUTINE,
    run_at: float | None = None,
    requested_by: str = "rix",
    key: str | None = None,
) -> int:
    """Queue a prefetch of a person's priors for ``trust``; one pending per pair, or per
    ``key`` (an order's). ``last`` None takes the ``prefetch_priors`` setting when it runs."""
    return queue.enqueue(
        conn,
        KIND,
        {
            "person_pk": person_pk,
            "trust": trust.code,
            "modalities": [m.upper() for m in modalities],
            "body_parts": [b.upper() for b in body_parts],
            "last": last,
            "requested_by": requested_by,
        },
        priority=priority,
        key=key or f"{KIND}:{trust.code}:{person_pk}",
        run_at=run_at,
        label=f"prefetch priors for {trust.code}",
        trust_pk=trust.pk,
    )


def request(
    archive: Archive,
    principal: Principal,
    *,
    trust: str,
    nhs_number: str = "",
    patient: str = "",
    modalities: Sequence[str] = (),
    body_parts: Sequence[str] = (),
    last: int = 3,
    priority: int = Priority.ROUTINE,
) -> int:
    """Clinical staff ask for a patient's priors at their own trust (the workflow calls
    ``schedule`` itself when an order arrives); audited like a transfer."""
    checks.require_prefetch(principal, trust)
    with begin_write(archive.engine) as conn:
        found = get_trust(conn, trust)
        person = grounds.person_named(conn, nhs_number=nhs_number, patient=patient)
        pk = schedule(
            conn,
            person_pk=person,
            trust=found,
            modalities=modalities,
            body_parts=body_parts,
            last=last,
            priority=priority,
            requested_by=principal.name,
        )
        trail.record_in(
            conn,
            principal,
            audit.Kind.TRANSFER,
            audit.Outcome.SUCCESS,
            trail.Touched(patient=patient, nhs_number=nhs.normalise(nhs_number)),
            {"action": "prefetch requested", "to": found.code, "job": pk},
        )
    queue.wake()
    return pk


def relevant(
    conn: Connection, rows: list[dict[str, Any]], modalities: set[str], body_parts: set[str]
) -> list[dict[str, Any]]:
    """Studies sharing a modality or a body part with the order (all when none given)."""
    if not modalities and not body_parts:
        return rows
    parts: dict[str, set[str]] = {}
    if body_parts:
        found = conn.execute(
            select(studies.c.study_uid, series.c.body_part)
            .join(series, series.c.study_pk == studies.c.id)
            .where(studies.c.study_uid.in_([r["study_uid"] for r in rows]))
        )
        for uid, part in found:
            parts.setdefault(uid, set()).add(str(part).upper())
    return [
        r
        for r in rows
        if set(str(r["modalities"]).split("\\")) & modalities
        or parts.get(r["study_uid"], set()) & body_parts
    ]


def run(ctx: Context) -> None:
    payload = ctx.job.payload
    with ctx.archive.engine.connect() as conn:
        trust = get_trust(conn, str(payload["trust"]))
        rows = transfer.recent_studies(conn, int(payload["person_pk"]), trust, days=0)
        chosen = relevant(conn, rows, set(payload["modalities"]), set(payload["body_parts"]))
    last = payload.get("last")
    chosen = chosen[: ctx.archive.settings.prefetch_priors if last is None else int(last)]
    if trust.pacs_ae:
        deliver.schedule_for_trust(ctx, [r["study_uid"] for r in chosen], trust, KIND)
        return
    _warm(ctx, [r["study_uid"] for r in chosen])


def _warm(ctx: Context, study_uids: list[str]) -> None:
    """Read every object once: from object storage into the node's cache, from files
    into the page cache."""
    with ctx.archive.engine.connect() as conn:
        stored = [
            item
            for uid in study_uids
            for item in queries.stored_instances(
                conn,
                [queries.Match(attribute=BY_KEYWORD["StudyInstanceUID"], value=uid)],
                scope=EVERYTHING,
            )
        ]
    for n, item in enumerate(stored, 1):
        with ctx.archive.store.open(item.storage_key) as f:
            while f.read(CHUNK):
                pass
        ctx.progress(n, len(stored))
    ctx.progress(len(stored), len(stored), force=True)
