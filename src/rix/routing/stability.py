"""Study stability: a study is stable ``stable_seconds`` after its last instance arrived,
and only then do routing rules see it (a half-arrived study is never forwarded).

Every commit that adds instances moves its studies' pending ``stable`` job later (one
keyed job per study), so the job runs once the study has been quiet that long. It also
matches the study to its order, once per study: the workflow's matching, which sits above
routing, is handed in by the composition root (``handler(match_order=...)``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import structlog
from sqlalchemy import Connection, select

from rix.index.database import begin_write
from rix.index.schema import instances, series, studies, trusts
from rix.jobs import queue
from rix.jobs.queue import Priority
from rix.jobs.worker import Context, Handler
from rix.routing import deliver, rules

KIND = "stable"
log = structlog.get_logger(__name__)


def scheduler(stable_seconds: float) -> Callable[[Connection, Iterable[str]], None]:
    """What the index writer calls, in the transaction that added instances."""

    def schedule(conn: Connection, study_uids: Iterable[str]) -> None:
        due = time.time() + stable_seconds
        for study_uid in study_uids:
            queue.enqueue(
                conn,
                KIND,
                {"study_uid": study_uid},
                priority=Priority.EMERGENCY,  # a quick look at the rules; never behind a backlog
                key=f"{KIND}:{study_uid}",
                run_at=due,
                label=f"study {study_uid} stable: apply routing rules",
            )

    return schedule


def facts(conn: Connection, study_uid: str) -> rules.Facts | None:
    """What the rules look at, read from the index."""
    study = conn.execute(
        select(studies.c.id, studies.c.study_description, trusts.c.code)
        .outerjoin(trusts, trusts.c.id == studies.c.trust_pk)
        .where(studies.c.study_uid == study_uid)
    ).first()
    if study is None:
        return None
    rows = conn.execute(
        select(
            series.c.modality,
            series.c.body_part,
            series.c.series_description,
            series.c.station_name,
            series.c.institution_name,
        ).where(series.c.study_pk == study.id)
    ).all()
    callers = conn.execute(
        select(instances.c.calling_ae)
        .distinct()
        .join(series, series.c.id == instances.c.series_pk)
        .where(series.c.study_pk == study.id)
    ).scalars()

    def of(values: Iterable[str]) -> frozenset[str]:
        return frozenset(v for v in values if v)

    return rules.Facts(
        trust=study.code or "",
        calling_ae=of(callers),
        modality=of(r.modality for r in rows),
        body_part=of(r.body_part for r in rows),
        description=of([study.study_description, *(r.series_description for r in rows)]),
        station=of(r.station_name for r in rows),
        institution=of(r.institution_name for r in rows),
    )


MatchOrder = Callable[[Connection, str], object]  # what it returns is not routing's


def handler(match_order: MatchOrder) -> Handler:
    """The ``stable`` job: match the study to its order, then apply the routing rules."""

    def run(ctx: Context) -> None:
        _run(ctx, match_order)

    return run


def _run(ctx: Context, match_order: MatchOrder) -> None:
    study_uid = str(ctx.job.payload["study_uid"])
    with begin_write(ctx.archive.engine) as conn:
        match_order(conn, study_uid)  # once per study, never per instance
    with ctx.archive.engine.connect() as conn:
        found = facts(conn, study_uid)
        if found is None:
            return  # removed meanwhile: nothing to route
        matched = [r for r in rules.in_force(conn) if r.matches(found)]
    if not matched:
        return
    with begin_write(ctx.archive.engine) as conn:
        for rule in matched:
            deliver.schedule(
                conn,
                study_uid=study_uid,
                destination=rule.send,
                priority=rule.priority,
                reason=f"rule {rule.name}",
            )
    log.info("routing rules matched", job=ctx.job.pk, rules=[r.name for r in matched])
