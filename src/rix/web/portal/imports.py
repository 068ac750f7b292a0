"""The import page: outside media from the browser, reconciled to the user's own records.

The page is a shell; ``static/import.js`` does the work against ``/api/imports``
(``rix.web.imports_api``): it sends the files in chunks (resuming after a dropped
connection), shows the outside patients the scan found, lets the user search their own
trust's records and choose one for each outside patient (or skip it), starts the store
and shows its progress and summary. The checks and the audit are the API's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from rix.access import Principal, checks
from rix.ingest import uploads
from rix.web.context import archive_of
from rix.web.portal import pages

router = APIRouter(include_in_schema=False)
User = Annotated[Principal, Depends(pages.user)]


@router.get("/import")
def import_page(request: Request, me: User) -> HTMLResponse:
    """Clinical staff and trust administrators of a trust; others get the API's 403."""
    trust = checks.require_import(me)
    settings = archive_of(request).settings
    return pages.render(
        request,
        "import.html",
        {
            "trust": trust,
            "chunk": 4 << 20,  # bytes per request: a dropped connection repeats at most this
            "max_chunk": uploads.MAX_CHUNK,
            "expiry_hours": settings.import_expiry_hours,
        },
    )
