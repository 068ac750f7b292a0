"""``rix serve``: one process with the DICOM listener and the HTTP server."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import structlog
import uvicorn

from rix.archive import open_archive
from rix.audit_export import AuditExporter
from rix.config import Settings
from rix.dicom import scp, tls
from rix.metadata import MetadataBuilder
from rix.web.app import create_app

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
    """Serve until SIGTERM/SIGINT; stores in flight finish before the index closes."""
    archive = open_archive(settings)
    exporter = AuditExporter(archive.engine, settings).start() if settings.audit_syslog else None
    dicom_server = scp.start(archive)
    tls_server = tls.start_tls(archive)
    builder = MetadataBuilder(archive).start()
    config = uvicorn.Config(
        create_app(archive),
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        access_log=False,  # URLs carry UIDs and, later, patient IDs: no PHI in ordinary logs
    )
    log.info("http listening", address=settings.http)
    try:
        _Server(config).run()
    finally:
        dicom_server.shutdown()
        if tls_server is not None:
            tls_server.shutdown()
        builder.stop()
        if exporter is not None:
            exporter.stop()
        archive.close()
        log.info("stopped")
