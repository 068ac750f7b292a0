"""``rix serve``: the DICOM and HL7 listeners, the HTTP server and the job workers."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import structlog
import uvicorn

from rix.archive import Archive, open_archive
from rix.audit.export import AuditExporter
from rix.config import Settings
from rix.dicom import scp, tls
from rix.hl7 import mllp
from rix.jobs.worker import Workers
from rix.retrieve.metadata import MetadataBuilder
from rix.routing.handlers import HANDLERS
from rix.web.app import create_app
from rix.workflow import turnaround

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


def run(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT; stores in flight finish before the index closes.

    ``roles`` chooses what this process does: web (HTTP), dicom (the DICOM listeners and
    the HL7 one), worker (jobs). One process does all three on a laptop; a region runs
    each on as many nodes as it needs, sharing the index and the object store.
    """
    roles = settings.role_set
    archive = open_archive(settings)
    exporter = AuditExporter(archive.engine, settings).start() if settings.audit_syslog else None
    listeners: list[Any] = []
    if "dicom" in roles:
        listeners.append(scp.start(archive))
        listeners.append(tls.start_tls(archive))
        if settings.hl7_port:
            listeners.append(mllp.start(archive))
    workers = Workers(archive, HANDLERS, settings.workers).start() if "worker" in roles else None
    if workers is not None:
        turnaround.schedule_check(archive)  # periodic; one pending whichever node starts
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
