"""Alembic environment: runs on the connection handed over by ``rix.index.database``."""

from alembic import context

from rix.index import workflow_tables  # noqa: F401 (registers its tables on the metadata)
from rix.index.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `rix db upgrade`, which passes a connection")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
