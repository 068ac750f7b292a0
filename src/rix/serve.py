"""``rix serve``: one process with the DICOM listener and the HTTP server."""

from __future__ import annotations

import structlog
import uvicorn

from rix.archive import open_archive
from rix.config import Settings
from rix.dicom import scp
from rix.metadata import MetadataBuilder
from rix.web.app import create_app

log = structlog.get_logger(__name__)


def run(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT; stores in flight finish before the index closes."""
    archive = open_archive(settings)
    dicom_server = scp.start(archive)
    builder = MetadataBuilder(archive).start()
    config = uvicorn.Config(
        create_app(archive),
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        access_log=False,  # URLs carry UIDs and, later, patient IDs: no PHI in ordinary logs
    )
    http_server = uvicorn.Server(config)  # handles SIGTERM/SIGINT itself
    log.info("http listening", address=settings.http)
    try:
        http_server.run()
    finally:
        dicom_server.shutdown()
        builder.stop()
        archive.close()
        log.info("stopped")
