"""The HTTP application: ``/healthz`` and DICOMweb under ``/dicomweb``."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import text

from rix.archive import Archive
from rix.errors import RixError
from rix.web import wado_uri
from rix.web.dicomweb import qido, stow, wado
from rix.web.dicomweb.errors import rix_error_handler


def create_app(archive: Archive) -> FastAPI:
    app = FastAPI(
        title="rix",
        summary="Regional Imaging eXchange: DICOMweb (PS3.18) and the portal",
        version="0.1.0",
    )
    app.add_exception_handler(RixError, rix_error_handler)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Deliberately public: load balancers and `make run` poll it. No patient data."""
        with archive.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    app.state.archive = archive
    app.include_router(qido.router, prefix="/dicomweb")
    app.include_router(wado.router, prefix="/dicomweb")
    app.include_router(stow.router, prefix="/dicomweb")
    app.include_router(wado_uri.router)
    return app
