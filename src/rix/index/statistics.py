"""What the status page answers: how much the archive holds, how fast it is receiving,
what is queued, and what went wrong lately.

Each question is one query. ``trust_pk`` narrows an answer to one trust's studies, jobs
and events (a trust administrator's view); ``None`` is the whole region. Nothing here
reads patient demographics: the refused and failed audit events carry only what the
audit trail holds, and the caller records that it was read (``rix.access.trail.record``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, and_, case, func, select

from rix.index.schema import instances, jobs, series, studies

HOUR = 3600.0
FAILING_STATES = ("pending", "dead")  # rix.jobs.queue.State: waiting to retry, or given up


@dataclass(frozen=True, slots=True, kw_only=True)
class Holdings:
    instances: int
    studies: int
    patients: int
    bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HourCount:
    start: float  # the hour's first second (epoch)
    instances: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FailingJob:
    pk: int
    kind: str
    state: str
    label: str
    attempts: int
    updated_at: float
    last_error: str


def holdings(conn: Connection, *, trust_pk: int | None) -> Holdings:
    """Instances and the bytes they take, studies, and patients (records with a study)."""
    of_studies = select(func.count(), func.count(func.distinct(studies.c.patient_pk)))
    of_instances = select(func.count(), func.coalesce(func.sum(instances.c.size), 0))
    if trust_pk is not None:
        of_studies = of_studies.where(studies.c.trust_pk == trust_pk)
        of_instances = of_instances.select_from(instances.join(series).join(studies)).where(
            studies.c.trust_pk == trust_pk
        )
    study_count, patient_count = conn.execute(of_studies).one()
    instance_count, size = conn.execute(of_instances).one()
    return Holdings(
        instances=int(instance_count),
        studies=int(study_count),
        patients=int(patient_count),
        bytes=int(size),
    )


def hourly_arrivals(
    conn: Connection, *, trust_pk: int | None, hours: int = 24, now: float | None = None
) -> list[HourCount]:
    """Instances received in each of the last ``hours`` clock hours, oldest first; the
    last is the hour in progress. One pass over the window (a conditional sum per hour:
    ``floor`` is not in every SQLite build, and PostgreSQL's cast to integer rounds)."""
    now = time.time() if now is None else now
    first = (now // HOUR - (hours - 1)) * HOUR
    starts = [first + h * HOUR for h in range(hours)]
    received = instances.c.received_at
    sums = [
        func.coalesce(func.sum(case((and_(received >= s, received < s + HOUR), 1), else_=0)), 0)
        for s in starts
    ]
    query = select(*sums).where(received >= first)
    if trust_pk is not None:
        query = query.select_from(instances.join(series).join(studies)).where(
            studies.c.trust_pk == trust_pk
        )
    row = conn.execute(query).one()
    return [HourCount(start=s, instances=int(n)) for s, n in zip(starts, row, strict=True)]


def failing_jobs(conn: Connection, *, trust_pk: int | None, limit: int = 20) -> list[FailingJob]:
    """Dead jobs, and pending ones whose last attempt failed, most recently changed first."""
    query = (
        select(jobs)
        .where(jobs.c.state.in_(FAILING_STATES), jobs.c.last_error != "")
        .order_by(jobs.c.updated_at.desc())
        .limit(limit)
    )
    if trust_pk is not None:
        query = query.where(jobs.c.trust_pk == trust_pk)
    return [
        FailingJob(
            pk=r.id,
            kind=r.kind,
            state=r.state,
            label=r.label,
            attempts=r.attempts,
            updated_at=r.updated_at,
            last_error=r.last_error,
        )
        for r in conn.execute(query)
    ]
