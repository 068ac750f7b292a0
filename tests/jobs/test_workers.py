"""Worker processes sharing one job table take different jobs: each runs once."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from rix.archive import Archive
from rix.index.database import begin_write
from rix.index.schema import jobs
from rix.jobs import queue
from rix.jobs.queue import State
from rix.workflow import turnaround_alerts
from tests.jobs.webhook import Recorder
from tests.jobs.worker_process import worker_processes
from tests.peers.archive import opened

JOBS = 100


def wait_until_settled(archive: Archive, timeout: float) -> dict[str, int]:
    """Counts by state of the test's jobs once none is pending or running (or after
    ``timeout``); a worker node's own recurring jobs (the turnaround check) never settle."""
    deadline = time.monotonic() + timeout
    while True:
        with archive.engine.connect() as conn:
            rows = conn.execute(
                select(jobs.c.state, func.count())
                .where(jobs.c.kind != turnaround_alerts.CHECK_KIND)
                .group_by(jobs.c.state)
            ).all()
        counts = {state: n for state, n in rows}
        unsettled = counts.get(State.PENDING.value, 0) + counts.get(State.RUNNING.value, 0)
        if not unsettled or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def test_two_worker_processes_run_each_job_once(tmp_path: Path, migrated_database_url: str) -> None:
    data = tmp_path / "data"
    # the receiver takes 20 ms a request, so one process alone could not drain the queue
    # before the other's next look at the table (every 0.5 s)
    with (
        Recorder(delay=0.02) as webhook,
        opened(data, migrated_database_url) as archive,
        worker_processes(2, data, migrated_database_url) as processes,
    ):
        with begin_write(archive.engine) as conn:
            for n in range(JOBS):
                queue.enqueue(conn, "notify", {"url": webhook.url, "body": {"n": n}})
        counts = wait_until_settled(archive, timeout=60)
        with archive.engine.connect() as conn:
            mine = jobs.c.kind == "notify"
            workers = conn.execute(select(jobs.c.worker).where(mine)).scalars().all()
            attempts = conn.execute(select(func.max(jobs.c.attempts)).where(mine)).scalar_one()
    assert counts == {State.DONE.value: JOBS}
    received = Counter(body["n"] for body in webhook.received())
    assert received == Counter(range(JOBS)), "a job ran twice, or not at all"
    assert attempts == 1
    pids = Counter(worker.split(":", 1)[1].split("/", 1)[0] for worker in workers)
    assert set(pids) == {str(p.pid) for p in processes}, pids
