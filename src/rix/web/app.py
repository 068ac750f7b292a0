"""The HTTP application: ``/healthz`` now; DICOMweb and the portal mount here later."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import text

from rix.archive import Archive


def create_app(archive: Archive) -> FastAPI:
    app = FastAPI(title="rix", summary="Regional Imaging eXchange", version="0.1.0")

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Deliberately public: load balancers and `make run` poll it. No patient data."""
        with archive.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    return app
