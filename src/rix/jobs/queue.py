"""The durable job table: at-least-once, with priorities, back-off and dead letters.

A job is a row. A worker claims the most urgent due one in a write transaction (on
PostgreSQL ``FOR UPDATE SKIP LOCKED``, so concurrent workers take different rows; on
SQLite the write lock serialises claims), holds it under a lease it renews while it works,
and marks it done, or failed with the next attempt scheduled. A worker that dies leaves
its lease to lapse and the job is claimed again: handlers are idempotent, so running a
job twice sends nothing twice that was acknowledged (``deliveries``).

Retries wait 1 s, doubling to 32 s, then every 5 minutes; a job still failing
``job_give_up_hours`` after it was created is dead-lettered with an alert.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from rix.errors import Conflict, NotFound
from rix.index.database import begin_write
from rix.index.schema import jobs

LEASE_SECONDS = 120.0  # a running job's claim; renewed by every progress report
BACKOFF = (1, 2, 4, 8, 16, 32)  # seconds before attempts 2..7
CAPPED_DELAY = 300.0  # then every 5 minutes until the job is given up


class State(StrEnum):
    PENDING = "pending"  # due at run_at
    RUNNING = "running"  # claimed by a worker under a lease
    DONE = "done"
    DEAD = "dead"  # failed past job_give_up_hours: kept, listed, retried only by hand
    CANCELLED = "cancelled"


class Priority(IntEnum):
    """Higher runs first: an emergency transfer overtakes a routine backlog."""

    ROUTINE = 0
    URGENT = 50
    EMERGENCY = 100

    @classmethod
    def named(cls, name: str) -> Priority:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise Conflict(
                f"unknown priority {name!r}: {', '.join(p.name.lower() for p in cls)}"
            ) from None


class Permanent(Exception):
    """A failure retrying cannot mend (the destination was removed, the payload is
    wrong): the job is dead-lettered at once."""


class Lost(Exception):
    """The job was cancelled, or its lease lapsed and another worker holds it: stop."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    pk: int
    kind: str
    state: State
    priority: int
    payload: dict[str, Any]
    label: str
    parent_pk: int | None
    trust_pk: int | None
    created_at: float
    run_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    worker: str
    done: int
    total: int
    last_error: str
    key: str | None


def _job(row: Row[Any]) -> Job:
    return Job(
        pk=row.id,
        kind=row.kind,
        state=State(row.state),
        priority=row.priority,
        payload=json.loads(row.payload),
        label=row.label,
        parent_pk=row.parent_pk,
        trust_pk=row.trust_pk,
        created_at=row.created_at,
        run_at=row.run_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        attempts=row.attempts,
        worker=row.worker,
        done=row.done,
        total=row.total,
        last_error=row.last_error,
        key=row.key,
    )


# --- adding work ---------------------------------------------------------------------------

_wake = threading.Condition()


def wake() -> None:
    """Tell this process's idle workers that work was added (others poll)."""
    with _wake:
        _wake.notify_all()


def wait_for_work(seconds: float) -> None:
    with _wake:
        _wake.wait(timeout=max(0.0, seconds))


def enqueue(
    conn: Connection,
    kind: str,
    payload: Mapping[str, Any],
    *,
    priority: int = Priority.ROUTINE,
    key: str | None = None,
    run_at: float | None = None,
    label: str = "",
    parent_pk: int | None = None,
    trust_pk: int | None = None,
) -> int:
    """Add a job in the caller's transaction; returns its id.

    With ``key``, a pending job of the same key is updated instead (its payload, its due
    time, and the higher of the two priorities): a study's stability check moves later
    with each instance, a rule's delivery of a study is queued once.
    """
    now = time.time()
    values: dict[str, Any] = {
        "kind": kind,
        "state": State.PENDING.value,
        "priority": int(priority),
        "key": key,
        "payload": json.dumps(dict(payload), sort_keys=True),
        "label": label,
        "parent_pk": parent_pk,
        "trust_pk": trust_pk,
        "created_at": now,
        "updated_at": now,
        "run_at": now if run_at is None else run_at,
    }
    if key is None:
        return int(conn.execute(jobs.insert().values(**values).returning(jobs.c.id)).scalar_one())
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(jobs).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[jobs.c.key],
        # a literal: a bound parameter here stops PostgreSQL matching the partial index
        # once psycopg prepares the statement (its fifth execution)
        index_where=text("state = 'pending'"),
        set_={
            "payload": stmt.excluded.payload,
            "run_at": stmt.excluded.run_at,
            "updated_at": stmt.excluded.updated_at,
            "parent_pk": func.coalesce(stmt.excluded.parent_pk, jobs.c.parent_pk),
            "priority": func.max(jobs.c.priority, stmt.excluded.priority)
            if conn.dialect.name == "sqlite"
            else func.greatest(jobs.c.priority, stmt.excluded.priority),
        },
    ).returning(jobs.c.id)
    return int(conn.execute(stmt).scalar_one())


# --- a worker's side -------------------------------------------------------------------------


def worker_name(thread: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}/{thread}"


def _due(now: float) -> Any:
    lapsed = and_(jobs.c.state == State.RUNNING.value, jobs.c.lease_until < now)
    return or_(and_(jobs.c.state == State.PENDING.value, jobs.c.run_at <= now), lapsed)


def claim(engine: Engine, worker: str) -> Job | None:
    """Take the most urgent due job, or a running one whose lease lapsed.

    Looked for first without a lock: idle workers poll, and on SQLite a write
    transaction would contend with ingest's for nothing.
    """
    now = time.time()
    query = (
        select(jobs.c.id)
        .where(_due(now))
        .order_by(jobs.c.priority.desc(), jobs.c.run_at, jobs.c.id)
        .limit(1)
    )
    with engine.connect() as conn:
        if conn.execute(query).scalar() is None:
            return None
    if engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    with begin_write(engine) as conn:
        pk = conn.execute(query).scalar()
        if pk is None:
            return None
        conn.execute(
            update(jobs)
            .where(jobs.c.id == pk)
            .values(
                state=State.RUNNING.value,
                worker=worker,
                lease_until=now + LEASE_SECONDS,
                attempts=jobs.c.attempts + 1,
                started_at=now,
                updated_at=now,
            )
        )
        return _job(conn.execute(select(jobs).where(jobs.c.id == pk)).one())


def next_due(engine: Engine) -> float | None:
    """When the soonest pending job falls due (a worker sleeps until then)."""
    with engine.connect() as conn:
        value = conn.execute(
            select(func.min(jobs.c.run_at)).where(jobs.c.state == State.PENDING.value)
        ).scalar()
    return None if value is None else float(value)


def _ours(job: Job, worker: str) -> Any:
    return and_(jobs.c.id == job.pk, jobs.c.worker == worker, jobs.c.state == State.RUNNING.value)


def report(conn: Connection, job: Job, worker: str, done: int, total: int) -> None:
    """Progress, and a renewed lease; ``Lost`` if the job is no longer this worker's."""
    now = time.time()
    result = conn.execute(
        update(jobs)
        .where(_ours(job, worker))
        .values(done=done, total=total, lease_until=now + LEASE_SECONDS, updated_at=now)
    )
    if not result.rowcount:
        raise Lost(f"job {job.pk} was cancelled or taken over")


def finish(engine: Engine, job: Job, worker: str) -> bool:
    now = time.time()
    with begin_write(engine) as conn:
        result = conn.execute(
            update(jobs)
            .where(_ours(job, worker))
            .values(
                state=State.DONE.value,
                finished_at=now,
                updated_at=now,
                lease_until=None,
                last_error="",
            )
        )
    return bool(result.rowcount)


def delay(attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones."""
    if attempts <= len(BACKOFF):
        return float(BACKOFF[attempts - 1])
    return CAPPED_DELAY


def fail(
    conn: Connection, job: Job, worker: str, error: str, give_up_hours: float, permanent: bool
) -> State:
    """Schedule the next attempt, or dead-letter; returns the job's new state.

    A keyed job that was queued again while it ran (new instances of its study) is
    superseded by that newer job rather than retried beside it.
    """
    now = time.time()
    next_at = now + delay(job.attempts)
    if permanent or next_at > job.created_at + give_up_hours * 3600:
        return _settle(conn, job, worker, State.DEAD, error)
    newer = _pending_with_key(conn, job.key, job.pk)
    if newer is not None:
        return _settle(conn, job, worker, State.CANCELLED, f"{error} (superseded by job {newer})")
    try:
        with conn.begin_nested():  # a newer job of the key may be queued this very moment
            result = conn.execute(
                update(jobs)
                .where(_ours(job, worker))
                .values(
                    state=State.PENDING.value,
                    run_at=next_at,
                    updated_at=now,
                    lease_until=None,
                    last_error=error[:2000],
                )
            )
    except IntegrityError:
        return _settle(conn, job, worker, State.CANCELLED, f"{error} (superseded)")
    if not result.rowcount:
        raise Lost(f"job {job.pk} was cancelled or taken over")
    return State.PENDING


def _settle(conn: Connection, job: Job, worker: str, state: State, error: str) -> State:
    now = time.time()
    result = conn.execute(
        update(jobs)
        .where(_ours(job, worker))
        .values(
            state=state.value,
            updated_at=now,
            finished_at=now,
            lease_until=None,
            last_error=error[:2000],
            key=None,
        )
    )
    if not result.rowcount:
        raise Lost(f"job {job.pk} was cancelled or taken over")
    return state


def requeue_orphans(engine: Engine) -> int:
    """Running jobs of this host's workers whose process is gone go back to pending at
    once (else they would wait out their lease): the restart after a crash. One whose
    key was queued again meanwhile is superseded by that newer job."""
    host = socket.gethostname()
    now = time.time()
    with begin_write(engine) as conn:
        rows = conn.execute(
            select(jobs.c.id, jobs.c.worker, jobs.c.key).where(
                jobs.c.state == State.RUNNING.value, jobs.c.worker.like(f"{host}:%")
            )
        ).all()
        orphans = [r for r in rows if not _alive(r.worker)]
        for orphan in orphans:
            newer = _pending_with_key(conn, orphan.key, orphan.id)
            values: dict[str, Any] = {"state": State.PENDING.value, "run_at": now}
            if newer is not None:
                values = {
                    "state": State.CANCELLED.value,
                    "key": None,
                    "finished_at": now,
                    "last_error": f"superseded by job {newer}",
                }
            conn.execute(
                update(jobs).where(jobs.c.id == orphan.id).values(lease_until=None, **values)
            )
    return len(orphans)


def _pending_with_key(conn: Connection, key: str | None, other_than: int) -> int | None:
    if key is None:
        return None
    found = conn.execute(
        select(jobs.c.id).where(
            jobs.c.key == key, jobs.c.state == State.PENDING.value, jobs.c.id != other_than
        )
    ).scalar()
    return None if found is None else int(found)


def _alive(worker: str) -> bool:
    try:
        pid = int(worker.split(":", 1)[1].split("/", 1)[0])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return False  # this process is starting: none of its workers runs anything yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- managing -----------------------------------------------------------------------------


def get(conn: Connection, pk: int) -> Job:
    row = conn.execute(select(jobs).where(jobs.c.id == pk)).first()
    if row is None:
        raise NotFound(f"no job {pk}")
    return _job(row)


def listing(
    conn: Connection,
    *,
    states: Sequence[State] = (),
    kind: str = "",
    parent_pk: int | None = None,
    trust_pk: int | None = None,
    limit: int = 100,
) -> list[Job]:
    """Jobs newest first (the CLI and the admin API); of one trust when given."""
    query = select(jobs).order_by(jobs.c.id.desc()).limit(limit)
    if trust_pk is not None:
        query = query.where(jobs.c.trust_pk == trust_pk)
    if states:
        query = query.where(jobs.c.state.in_([s.value for s in states]))
    if kind:
        query = query.where(jobs.c.kind == kind)
    if parent_pk is not None:
        query = query.where(jobs.c.parent_pk == parent_pk)
    return [_job(r) for r in conn.execute(query)]


def counts(conn: Connection, *, trust_pk: int | None = None) -> dict[str, int]:
    """How many jobs are in each state, of one trust or of all."""
    query = select(jobs.c.state, func.count()).group_by(jobs.c.state)
    if trust_pk is not None:
        query = query.where(jobs.c.trust_pk == trust_pk)
    return {str(state): int(n) for state, n in conn.execute(query)}


def children_progress(conn: Connection, parent_pk: int) -> tuple[int, int, int]:
    """(jobs done, jobs in all, instances delivered) of a transfer's deliveries."""
    rows = conn.execute(
        select(jobs.c.state, jobs.c.done).where(jobs.c.parent_pk == parent_pk)
    ).all()
    done = sum(1 for r in rows if r.state == State.DONE.value)
    return done, len(rows), sum(r.done for r in rows)


def retry(conn: Connection, pk: int) -> Job:
    """Run a dead, cancelled or waiting job now (attempts and give-up start afresh)."""
    job = get(conn, pk)
    if job.state in (State.RUNNING, State.DONE):
        raise Conflict(f"job {pk} is {job.state.value}")
    now = time.time()
    conn.execute(
        update(jobs)
        .where(jobs.c.id == pk)
        .values(
            state=State.PENDING.value,
            run_at=now,
            created_at=now,
            attempts=0,
            finished_at=None,
            updated_at=now,
        )
    )
    return get(conn, pk)


def cancel(conn: Connection, pk: int) -> int:
    """Stop a job and its children that have not finished: a pending one never runs, a
    running one stops at its next progress report. Returns how many were cancelled."""
    get(conn, pk)
    return cancel_tree(conn, pk)


def cancel_tree(conn: Connection, pk: int) -> int:
    now = time.time()
    result = conn.execute(
        update(jobs)
        .where(
            or_(jobs.c.id == pk, jobs.c.parent_pk == pk),
            jobs.c.state.in_([State.PENDING.value, State.RUNNING.value]),
        )
        .values(state=State.CANCELLED.value, key=None, finished_at=now, updated_at=now)
    )
    return int(result.rowcount)
