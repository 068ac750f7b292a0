"""The job table's contract, in process: order, due times, keys, back-off, dead letters,
retry, cancel and leases (``rix.jobs.queue``)."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
from typing import Any

import pytest
from sqlalchemy import func, select, update

from rix.archive import Archive
from rix.errors import Conflict
from rix.index.database import begin_write
from rix.index.schema import jobs
from rix.jobs import queue
from rix.jobs.queue import Job, Lost, Priority, State
from rix.jobs.worker import Workers

ONE = "elsewhere:1/0"  # workers of another host: requeue_orphans leaves their jobs alone
OTHER = "elsewhere:2/0"
DAY = 24.0  # give-up hours that no test reaches


def add(
    archive: Archive, kind: str = "stable", payload: dict[str, Any] | None = None, **kw: Any
) -> int:
    with begin_write(archive.engine) as conn:
        return queue.enqueue(conn, kind, payload or {}, **kw)


def get(archive: Archive, pk: int) -> Job:
    with archive.engine.connect() as conn:
        return queue.get(conn, pk)


def claim(archive: Archive, worker: str = ONE) -> Job:
    job = queue.claim(archive.engine, worker)
    assert job is not None, "no job was due"
    return job


def fail(
    archive: Archive,
    job: Job,
    worker: str = ONE,
    *,
    give_up_hours: float = DAY,
    permanent: bool = False,
) -> State:
    with begin_write(archive.engine) as conn:
        return queue.fail(conn, job, worker, "Unreachable: no answer", give_up_hours, permanent)


def set_columns(archive: Archive, pk: int, **values: Any) -> None:
    """What time does to a row (a lease lapses, a back-off passes), without waiting."""
    with begin_write(archive.engine) as conn:
        conn.execute(update(jobs).where(jobs.c.id == pk).values(**values))


def states(archive: Archive) -> dict[int, State]:
    with archive.engine.connect() as conn:
        return {j.pk: j.state for j in queue.listing(conn, limit=1000)}


def test_emergency_job_is_claimed_before_routine_jobs_queued_earlier(archive: Archive) -> None:
    first = add(archive)
    second = add(archive)
    emergency = add(archive, priority=Priority.EMERGENCY)
    urgent = add(archive, priority=Priority.URGENT)
    claimed = [claim(archive).pk for _ in range(4)]
    assert claimed == [emergency, urgent, first, second]
    assert queue.claim(archive.engine, ONE) is None


def test_job_is_not_claimed_before_its_run_at(archive: Archive) -> None:
    later = time.time() + 3600
    add(archive, run_at=later)
    assert queue.claim(archive.engine, ONE) is None
    assert queue.next_due(archive.engine) == pytest.approx(later)
    due = add(archive)
    assert claim(archive).pk == due
    assert queue.claim(archive.engine, ONE) is None


def test_keyed_enqueue_updates_the_pending_job_keeping_the_higher_priority(
    archive: Archive,
) -> None:
    now = time.time()
    first = add(archive, payload={"n": 1}, key="stable:1.2.3", priority=Priority.EMERGENCY)
    again = add(
        archive, payload={"n": 2}, key="stable:1.2.3", priority=Priority.ROUTINE, run_at=now + 60
    )
    assert again == first
    job = get(archive, first)
    assert (job.payload, job.run_at, job.priority) == ({"n": 2}, now + 60, Priority.EMERGENCY)
    assert add(archive, key="stable:1.2.3", priority=Priority.URGENT) == first
    assert get(archive, first).priority == Priority.EMERGENCY
    assert list(states(archive)) == [first]


def test_keyed_enqueue_raises_the_priority_of_the_pending_job(archive: Archive) -> None:
    first = add(archive, key="send:ae:PACS::1.2.3")
    assert add(archive, key="send:ae:PACS::1.2.3", priority=Priority.URGENT) == first
    assert get(archive, first).priority == Priority.URGENT


def test_running_job_does_not_absorb_a_new_job_of_its_key(archive: Archive) -> None:
    running = add(archive, payload={"n": 1}, key="stable:1.2.3")
    assert claim(archive).pk == running
    newer = add(archive, payload={"n": 2}, key="stable:1.2.3")
    assert newer != running
    assert states(archive) == {running: State.RUNNING, newer: State.PENDING}
    assert add(archive, payload={"n": 3}, key="stable:1.2.3") == newer
    assert get(archive, newer).payload == {"n": 3}


def test_backoff_doubles_from_one_second_to_32_then_waits_five_minutes() -> None:
    assert [queue.delay(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 300, 300, 300]


def test_failed_job_waits_its_backoff_before_the_next_attempt(archive: Archive) -> None:
    pk = add(archive)
    for attempt in range(1, 9):
        job = claim(archive)
        assert (job.pk, job.attempts) == (pk, attempt)
        before = time.time()
        assert fail(archive, job) is State.PENDING
        after = time.time()
        failed = get(archive, pk)
        wait = queue.delay(attempt)
        assert before + wait <= failed.run_at <= after + wait
        assert failed.last_error == "Unreachable: no answer"
        assert queue.claim(archive.engine, ONE) is None, "claimed before its back-off passed"
        set_columns(archive, pk, run_at=time.time())


def test_job_failing_past_its_give_up_time_is_dead_lettered(archive: Archive) -> None:
    pk = add(archive, key="stable:1.2.3")
    # 0.36 s to give up: the first retry (1 s later) would fall after it
    assert fail(archive, claim(archive), give_up_hours=0.0001) is State.DEAD
    dead = get(archive, pk)
    assert (dead.state, dead.key, dead.attempts) == (State.DEAD, None, 1)
    assert dead.finished_at is not None
    assert queue.claim(archive.engine, ONE) is None
    with archive.engine.connect() as conn:
        assert [j.pk for j in queue.listing(conn, states=[State.DEAD])] == [pk]
        assert queue.counts(conn) == {"dead": 1}


def test_failing_job_within_its_give_up_time_is_retried(archive: Archive) -> None:
    pk = add(archive)
    assert fail(archive, claim(archive), give_up_hours=1.0) is State.PENDING
    assert get(archive, pk).finished_at is None


def test_permanent_failure_is_dead_lettered_at_once(archive: Archive) -> None:
    pk = add(archive)
    assert fail(archive, claim(archive), permanent=True) is State.DEAD
    assert get(archive, pk).attempts == 1


def test_job_without_a_handler_is_dead_lettered_with_one_alert(archive: Archive) -> None:
    settings = dataclasses.replace(archive.settings, alert_webhook="http://127.0.0.1:9/hook")
    workers = Workers(dataclasses.replace(archive, settings=settings), {}, count=0)
    pk = add(archive, kind="mystery", label="a kind nobody handles")
    workers.run_one(claim(archive, "w"), "w")
    dead = get(archive, pk)
    assert dead.state is State.DEAD
    assert "no handler" in dead.last_error
    with archive.engine.connect() as conn:
        alerts = queue.listing(conn, kind="notify")
    assert len(alerts) == 1
    assert alerts[0].priority == Priority.URGENT
    assert alerts[0].payload == {
        "url": "http://127.0.0.1:9/hook",
        "body": {
            "event": "job-dead-lettered",
            "job": pk,
            "kind": "mystery",
            "label": "a kind nobody handles",
            "attempts": 1,
            "error": dead.last_error,
        },
    }


def test_dead_alert_raises_no_alert_of_its_own(archive: Archive) -> None:
    settings = dataclasses.replace(archive.settings, alert_webhook="http://127.0.0.1:9/hook")
    workers = Workers(dataclasses.replace(archive, settings=settings), {}, count=0)
    pk = add(archive, kind="notify", payload={"url": "http://127.0.0.1:9/", "body": {}})
    workers.run_one(claim(archive, "w"), "w")  # no handler here: dead at once
    assert states(archive) == {pk: State.DEAD}


def test_retry_makes_a_dead_job_pending_and_due(archive: Archive) -> None:
    pk = add(archive)
    fail(archive, claim(archive), permanent=True)
    with begin_write(archive.engine) as conn:
        retried = queue.retry(conn, pk)
    assert (retried.state, retried.attempts, retried.finished_at) == (State.PENDING, 0, None)
    assert retried.run_at <= time.time()
    again = claim(archive)
    assert (again.pk, again.attempts) == (pk, 1)


def test_retry_makes_a_waiting_job_due_now(archive: Archive) -> None:
    pk = add(archive, run_at=time.time() + 3600)
    with begin_write(archive.engine) as conn:
        queue.retry(conn, pk)
    assert claim(archive).pk == pk


def test_retry_of_a_running_or_finished_job_is_refused(archive: Archive) -> None:
    running = add(archive)
    claim(archive)
    finished = add(archive)
    assert queue.finish(archive.engine, claim(archive), ONE)
    for pk in (running, finished):
        with pytest.raises(Conflict), begin_write(archive.engine) as conn:
            queue.retry(conn, pk)


def test_cancelling_a_transfer_cancels_its_unfinished_deliveries(archive: Archive) -> None:
    later = time.time() + 3600
    transfer = add(archive, kind="transfer", run_at=later)
    delivered = add(archive, kind="send", parent_pk=transfer)
    assert queue.finish(archive.engine, claim(archive), ONE)
    sending = add(archive, kind="send", parent_pk=transfer)
    in_hand = claim(archive, OTHER)
    waiting = add(archive, kind="send", parent_pk=transfer, run_at=later)
    unrelated = add(archive, kind="send", run_at=later)
    with begin_write(archive.engine) as conn:
        assert queue.cancel(conn, transfer) == 3
        assert queue.children_progress(conn, transfer) == (1, 3, 0)
    assert states(archive) == {
        transfer: State.CANCELLED,
        delivered: State.DONE,
        sending: State.CANCELLED,
        waiting: State.CANCELLED,
        unrelated: State.PENDING,
    }
    assert not queue.finish(archive.engine, in_hand, OTHER), "a cancelled job was finished"


def test_progress_report_of_a_cancelled_job_raises_lost(archive: Archive) -> None:
    pk = add(archive)
    job = claim(archive)
    with begin_write(archive.engine) as conn:
        queue.report(conn, job, ONE, 1, 10)
        queue.cancel(conn, pk)
    with pytest.raises(Lost), begin_write(archive.engine) as conn:
        queue.report(conn, job, ONE, 2, 10)
    with pytest.raises(Lost), begin_write(archive.engine) as conn:
        queue.fail(conn, job, ONE, "late", DAY, permanent=False)
    assert get(archive, pk).state is State.CANCELLED


def test_job_whose_lease_lapsed_is_claimed_by_another_worker(archive: Archive) -> None:
    pk = add(archive)
    first = claim(archive, ONE)
    assert queue.claim(archive.engine, OTHER) is None, "a leased job was claimed twice"
    set_columns(archive, pk, lease_until=time.time() - 1)
    second = claim(archive, OTHER)
    assert (second.pk, second.attempts, second.worker) == (pk, 2, OTHER)
    with pytest.raises(Lost), begin_write(archive.engine) as conn:
        queue.report(conn, first, ONE, 1, 1)
    assert not queue.finish(archive.engine, first, ONE)
    assert queue.finish(archive.engine, second, OTHER)
    assert get(archive, pk).state is State.DONE


def test_failing_keyed_job_gives_way_to_a_newer_job_of_its_key(archive: Archive) -> None:
    older = add(archive, key="send:ae:PACS::1.2.3")
    job = claim(archive)
    newer = add(archive, key="send:ae:PACS::1.2.3")
    assert fail(archive, job) is State.CANCELLED
    assert f"superseded by job {newer}" in get(archive, older).last_error
    assert states(archive) == {older: State.CANCELLED, newer: State.PENDING}


def exited_process_id() -> int:
    """The id of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_running_jobs_of_an_exited_process_on_this_host_are_requeued(archive: Archive) -> None:
    host = socket.gethostname()
    orphan = add(archive)
    claim(archive, f"{host}:{exited_process_id()}/0")
    alive = add(archive)
    claim(archive, f"{host}:{os.getppid()}/0")
    remote = add(archive)
    claim(archive, ONE)
    assert queue.requeue_orphans(archive.engine) == 1
    assert states(archive) == {orphan: State.PENDING, alive: State.RUNNING, remote: State.RUNNING}
    assert claim(archive).pk == orphan


def test_orphan_requeued_beside_a_newer_job_of_its_key_leaves_one_pending(
    archive: Archive,
) -> None:
    """A stability job running when its process died, and the study's next instance
    queued it again meanwhile (another node's DICOM listener): the restart must not fail."""
    key = "stable:1.2.3"
    add(archive, key=key)
    claim(archive, f"{socket.gethostname()}:{exited_process_id()}/0")
    add(archive, key=key)
    queue.requeue_orphans(archive.engine)
    with archive.engine.connect() as conn:
        pending = conn.execute(
            select(func.count()).where(jobs.c.key == key, jobs.c.state == State.PENDING.value)
        ).scalar_one()
    assert pending == 1
