"""The HTTP application: ``/healthz`` and ``/login`` (public), DICOMweb under
``/dicomweb`` and the region's API under ``/api`` (signed in), the OHIF viewer under
``/viewer/`` (``rix.web.viewer``)."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import text

from rix.archive import Archive
from rix.errors import RixError
from rix.web import api, jobs_api, login, viewer, wado_uri
from rix.web.auth import authenticate, authorize_study
from rix.web.dicomweb import qido, stow, wado
from rix.web.dicomweb.errors import rix_error_handler


def create_app(archive: Archive) -> FastAPI:
    app = FastAPI(
        title="rix",
        summary="Regional Imaging eXchange: DICOMweb (PS3.18) and the portal",
        version="0.1.0",
        # the API description and its browser are signed-in routes like every other
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.add_exception_handler(RixError, rix_error_handler)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Deliberately public: load balancers and `make run` poll it. No patient data."""
        with archive.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    app.state.archive = archive
    signed_in = [Depends(authenticate)]
    # every route that names a study is authorised (and audited) before it runs
    authorised = [Depends(authenticate), Depends(authorize_study)]
    app.include_router(login.router)  # public: the sign-in page
    app.include_router(qido.router, prefix="/dicomweb", dependencies=signed_in)
    app.include_router(wado.router, prefix="/dicomweb", dependencies=authorised)
    app.include_router(stow.router, prefix="/dicomweb", dependencies=signed_in)
    app.include_router(wado_uri.router, dependencies=authorised)
    app.include_router(api.router, dependencies=signed_in)
    app.include_router(jobs_api.router, dependencies=signed_in)
    # the OHIF viewer: its pages need a session (redirect to /login), its bundles do not
    app.include_router(viewer.router)
    viewer.warn_if_missing(archive.settings.viewer_dir)

    @app.get("/openapi.json", include_in_schema=False, dependencies=signed_in)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=signed_in)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="rix API")

    return app
