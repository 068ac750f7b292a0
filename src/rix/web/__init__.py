"""The HTTP front end (FastAPI on Starlette)."""
