"""The composition root: the archive with its hooks, the job registry, and ``rix serve``
(the DICOM and HL7 listeners, the HTTP server and the job workers).

Lower layers never import upper ones; what they must call above them is wired here: the
index writer's hooks (the MPI links a new patient record, routing schedules a study's
stability job), the workflow's order matching run by that job, and the handler of every
job kind, each defined next to its kind.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import structlog
import uvicorn

from rix import archive as archives
from rix.archive import Archive
from rix.audit.export import AuditExporter
from rix.config import Settings, quiet_phi_loggers
from rix.dicom import scp, tls
from rix.hl7 import mllp
from rix.index.write import Hooks
from rix.ingest import reconcile
from rix.jobs import mail, webhook
from rix.jobs.worker import Handler, Workers
from rix.region import mpi
from rix.retrieve.metadata import MetadataBuilder
from rix.routing import deliver, prefetch, stability, transfer
from rix.web.app import create_app
from rix.workflow import job_kinds, order_matching, turnaround_alerts

log = structlog.get_logger(__name__)


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its own shutdown, which would kill the process
    before the DICOM listener and the index writer close; rix handles the signal."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        def stop(_signum: int, _frame: FrameType | None) -> None:
            self.should_exit = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def writer_hooks(settings: Settings) -> Hooks:
    """What runs in the transaction that adds instances, durable with them."""
    return Hooks(
        new_record=mpi.on_new_record,
        added=stability.scheduler(settings.stable_seconds),
    )


def open_archive(settings: Settings, *, migrate: bool = True) -> Archive:
    """The archive as every command, server and test of the whole system opens it."""
    return archives.open_with(settings, writer_hooks(settings), migrate=migrate)


def job_handlers() -> dict[str, Handler]:
    """Which function runs each kind of job: the registry, assembled at start."""
    return {
        stability.KIND: stability.handler(match_order=order_matching.match_study),
        deliver.KIND: deliver.run,
        transfer.KIND: transfer.run,
        prefetch.KIND: prefetch.run,
        webhook.KIND: webhook.run,
        reconcile.KIND: reconcile.run,
        reconcile.EXPIRE_KIND: reconcile.expire,
        mail.KIND: mail.run,
        **job_kinds.HANDLERS,
    }


def run(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT; stores in flight finish before the index closes.

    ``roles`` chooses what this process does: web (HTTP), dicom (the DICOM listeners and
    the HL7 one), worker (jobs). One process does all three on a laptop; a region runs
    each on as many nodes as it needs, sharing the index and the object store.
    """
    roles = settings.role_set
    quiet_phi_loggers()  # every role: a worker sends over DIMSE too
    archive = open_archive(settings)
    exporter = AuditExporter(archive.engine, settings).start() if settings.audit_syslog else None
    listeners: list[Any] = []
    if "dicom" in roles:
        listeners.append(scp.start(archive))
        listeners.append(tls.start_tls(archive))
        if settings.hl7_port:
            listeners.append(mllp.start(archive))
    workers = (
        Workers(archive, job_handlers(), settings.workers).start() if "worker" in roles else None
    )
    if workers is not None:
        turnaround_alerts.schedule_check(archive)  # periodic; one pending whichever node starts
    builder = MetadataBuilder(archive).start()
    try:
        if "web" in roles:
            _serve_http(archive, settings)
        else:
            _wait_for_signal()
    finally:
        for listener in listeners:
            if listener is not None:
                listener.shutdown()
        if workers is not None:
            workers.stop()
        builder.stop()
        if exporter is not None:
            exporter.stop()
        archive.close()
        log.info("stopped")


def _serve_http(archive: Archive, settings: Settings) -> None:
    config = uvicorn.Config(
        create_app(archive),
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        access_log=False,  # URLs carry UIDs and, later, patient IDs: no PHI in ordinary logs
    )
    log.info("http listening", address=settings.http)
    _Server(config).run()


def _wait_for_signal() -> None:
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    log.info("serving without HTTP until stopped")
    while not stopping.wait(1.0):  # a timeout, so signals are seen promptly
        pass
