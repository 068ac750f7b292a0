"""The HTTP front end (FastAPI on Starlette): DICOMweb (``dicomweb/``), the JSON API
(``api/``), the portal's pages (``portal/``), the OHIF viewer, sign-in and CSRF. Routes
translate HTTP into calls of the layers below; who may see what is ``rix.access``'s.
"""
