"""Workers: threads that claim due jobs and run their handlers.

Inside ``rix serve`` (``workers`` threads) or on their own (``rix serve --role worker``),
on as many machines as needed: the job table is the only thing they share. A handler is
a plain function of a ``Context``; it reports progress, which renews the job's lease, and
stops with ``Lost`` when the job was cancelled meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import Connection

from rix.index.database import begin_write
from rix.jobs import queue
from rix.jobs.queue import Job, Lost, Permanent, State

if TYPE_CHECKING:
    from rix.archive import Archive

log = structlog.get_logger(__name__)

IDLE_POLL = 0.5  # seconds between looks at the table when idle (other processes' work)
REPORT_EVERY = 2.0  # seconds between progress writes


@dataclass
class Context:
    """What a handler gets: the archive, its job, and a way to report progress."""

    archive: Archive
    job: Job
    worker: str
    _last_report: float = field(default=0.0)

    def progress(
        self,
        done: int,
        total: int,
        *,
        also: Callable[[Connection], None] | None = None,
        force: bool = False,
    ) -> None:
        """Record progress (and ``also``, in the same transaction) every few seconds,
        or now with ``force``; raises ``Lost`` if the job is no longer ours."""
        now = time.monotonic()
        if not force and now - self._last_report < REPORT_EVERY:
            return
        self._last_report = now
        with begin_write(self.archive.engine) as conn:
            queue.report(conn, self.job, self.worker, done, total)
            if also is not None:
                also(conn)


Handler = Callable[[Context], None]


class Workers:
    """``count`` threads running jobs until ``stop``."""

    def __init__(self, archive: Archive, handlers: Mapping[str, Handler], count: int) -> None:
        self.archive = archive
        self.handlers = dict(handlers)
        self.count = count
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Workers:
        requeued = queue.requeue_orphans(self.archive.engine)
        if requeued:
            log.info("jobs of a stopped process requeued", jobs=requeued)
        for n in range(self.count):
            thread = threading.Thread(
                target=self._run, args=(queue.worker_name(n),), name=f"rix-worker-{n}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        log.info("workers started", workers=self.count)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the jobs in hand (a send in flight completes), then return."""
        self._stopping.set()
        queue.wake()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _run(self, name: str) -> None:
        while not self._stopping.is_set():
            try:
                self._step(name)
            except Exception as exc:  # the database is away: wait, try again, never die
                log.warning("job worker step failed", error=type(exc).__name__)
                self._stopping.wait(IDLE_POLL * 4)

    def _step(self, name: str) -> None:
        """Run one due job, or wait a little for one. If the outcome cannot be recorded
        (the database went away), the job's lease lapses and it runs again."""
        job = queue.claim(self.archive.engine, name)
        if job is None:
            self._idle()
        else:
            self.run_one(job, name)

    def _idle(self) -> None:
        due = queue.next_due(self.archive.engine)
        wait = IDLE_POLL if due is None else min(IDLE_POLL, due - time.time())
        if wait > 0:
            queue.wait_for_work(wait)

    def run_one(self, job: Job, name: str) -> None:
        handler = self.handlers.get(job.kind)
        started = time.monotonic()
        try:
            if handler is None:
                raise Permanent(f"no handler for jobs of kind {job.kind!r}")
            handler(Context(archive=self.archive, job=job, worker=name))
        except Lost as exc:
            log.info("job stopped", job=job.pk, kind=job.kind, reason=str(exc))
            return
        except Exception as exc:  # every failure is retried or dead-lettered, never lost
            self._failed(job, name, exc)
            return
        if queue.finish(self.archive.engine, job, name):
            log.info(
                "job done",
                job=job.pk,
                kind=job.kind,
                seconds=round(time.monotonic() - started, 3),
            )
        queue.wake()  # it may have queued more

    def _failed(self, job: Job, name: str, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        settings = self.archive.settings
        try:
            with begin_write(self.archive.engine) as conn:
                state = queue.fail(
                    conn,
                    job,
                    name,
                    error,
                    settings.job_give_up_hours,
                    permanent=isinstance(exc, Permanent),
                )
                if state is State.DEAD:
                    dead_letter_alert(conn, job, error, settings.alert_webhook)
        except Lost:
            return
        if state is State.DEAD:
            log.error("job dead-lettered", job=job.pk, kind=job.kind, error=error)
        else:
            log.warning(
                "job failed; will retry",
                job=job.pk,
                kind=job.kind,
                attempt=job.attempts,
                error=error,
            )


def dead_letter_alert(conn: Connection, job: Job, error: str, webhook: str) -> None:
    """An alert for a dead job, itself a job (``notify``) so a webhook that is down
    does not lose it; alerts about alerts are only logged."""
    if not webhook or job.kind == "notify":
        return
    queue.enqueue(
        conn,
        "notify",
        {
            "url": webhook,
            "body": {
                "event": "job-dead-lettered",
                "job": job.pk,
                "kind": job.kind,
                "label": job.label,
                "attempts": job.attempts,
                "error": error,
            },
        },
        priority=queue.Priority.URGENT,
        label=f"alert: job {job.pk} dead-lettered",
    )
