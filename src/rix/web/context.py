"""The archive a request works on: attached to the application once by ``create_app`` and
read by every route (DICOMweb, the API, the portal, the viewer), so no route opens an
engine or reads settings of its own (one engine per process, never one per request).
"""

from __future__ import annotations

from fastapi import FastAPI, Request

from rix.archive import Archive


def attach_archive(app: FastAPI, archive: Archive) -> None:
    app.state.archive = archive


def archive_of(request: Request) -> Archive:
    """The archive the application was created with (``attach_archive``)."""
    archive: Archive = request.app.state.archive
    return archive
