"""The HTTP application: ``/healthz`` and ``/login`` (public), DICOMweb under
``/dicomweb`` and the region's API under ``/api`` (signed in), the OHIF viewer under
``/viewer/`` (``rix.web.viewer``) and the portal's pages (``rix.web.portal``)."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import text

from rix.archive import Archive
from rix.errors import RixError
from rix.web import login, oidc_login, viewer
from rix.web.api import imports as imports_api
from rix.web.api import jobs as jobs_api
from rix.web.api import orders as orders_api
from rix.web.api import region as region_api
from rix.web.api import reporting as reporting_api
from rix.web.api import shares as shares_api
from rix.web.api import turnaround as turnaround_api
from rix.web.auth import authenticate, authorize_study
from rix.web.context import attach_archive
from rix.web.dicomweb import qido, stow, wado, wado_uri
from rix.web.dicomweb.errors import rix_error_handler
from rix.web.portal import (
    admin,
    imports,
    launch,
    pages,
    reporting,
    search,
    share_owner,
    share_recipient,
    status,
    study,
    turnaround,
)
from rix.web.portal import orders as orders_page


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

    async def on_error(request: Request, exc: Exception) -> Response:
        """A failure on a portal page is a page; elsewhere the API's answer."""
        assert isinstance(exc, RixError)
        if pages.is_page(request):
            return pages.error_page(request, exc)
        return await rix_error_handler(request, exc)

    async def on_sign_in_first(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, pages.SignInFirst)
        return pages.sign_in_redirect(request, exc)

    app.add_exception_handler(RixError, on_error)
    app.add_exception_handler(pages.SignInFirst, on_sign_in_first)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Deliberately public: load balancers and `make run` poll it. No patient data."""
        with archive.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    attach_archive(app, archive)
    signed_in = [Depends(authenticate)]
    # every route that names a study is authorised (and audited) before it runs
    authorised = [Depends(authenticate), Depends(authorize_study)]
    app.include_router(login.router)  # public: the sign-in page
    if archive.settings.oidc_client_id:  # public: single sign-on, there and back
        app.include_router(oidc_login.router)
    app.include_router(qido.router, prefix="/dicomweb", dependencies=signed_in)
    app.include_router(
        qido.router,
        prefix="/dicomweb/regional",
        dependencies=[*signed_in, Depends(qido.regional_mount)],
        include_in_schema=False,
    )
    app.include_router(wado.router, prefix="/dicomweb", dependencies=authorised)
    app.include_router(stow.router, prefix="/dicomweb", dependencies=signed_in)
    app.include_router(wado_uri.router, dependencies=authorised)
    app.include_router(region_api.router, dependencies=signed_in)
    app.include_router(jobs_api.router, dependencies=signed_in)
    app.include_router(imports_api.router, dependencies=signed_in)
    app.include_router(orders_api.router, dependencies=signed_in)
    app.include_router(shares_api.router, dependencies=signed_in)
    app.include_router(reporting_api.router, dependencies=signed_in)
    app.include_router(turnaround_api.router, dependencies=signed_in)
    app.include_router(share_recipient.router)  # public: a share link's holder has no account
    # the OHIF viewer: its pages need a session (redirect to /login), its bundles do not
    app.include_router(viewer.router)
    # the portal's pages: each needs a session (redirect to /login), its files do not
    app.include_router(pages.router)
    app.include_router(search.router)
    app.include_router(study.router)
    app.include_router(launch.router)
    app.include_router(imports.router)
    app.include_router(admin.router)
    app.include_router(status.router)
    app.include_router(reporting.router)
    app.include_router(turnaround.router)
    app.include_router(orders_page.router)
    app.include_router(share_owner.router)
    viewer.warn_if_missing(archive.settings.viewer_folder)

    @app.get("/openapi.json", include_in_schema=False, dependencies=signed_in)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=signed_in)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="rix API")

    return app
