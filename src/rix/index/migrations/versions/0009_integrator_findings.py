"""what integrators need: a validator for derived metadata, the kind of each AE, a trust's
consent to shares without a PIN, and whether an agreement shows names before a claim

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 21:45:00
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instance_metadata", schema=None) as batch_op:
        # changes whenever the document is rebuilt (an identity correction): the HTTP validator
        batch_op.add_column(
            sa.Column("etag", sa.String(length=64), server_default="", nullable=False)
        )
    _fill_etags()
    with op.batch_alter_table("application_entities", schema=None) as batch_op:
        # pacs, workstation, modality or other: only the first two are offered for "Send"
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="pacs", nullable=False)
        )
    with op.batch_alter_table("trusts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("shares_without_pin", sa.Boolean(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("agreements", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("names_before_claim", sa.Boolean(), server_default="1", nullable=False)
        )


def _fill_etags() -> None:
    """The validator of every document built before this revision (sha256 of its JSON, as
    ``rix.retrieve.metadata.document_etag``), once, so no request hashes documents."""
    connection = op.get_bind()
    table = sa.table(
        "instance_metadata", sa.column("instance_pk"), sa.column("json"), sa.column("etag")
    )
    last = 0
    while True:
        batch = connection.execute(
            sa.select(table.c.instance_pk, table.c.json)
            .where(table.c.instance_pk > last)
            .order_by(table.c.instance_pk)
            .limit(1000)
        ).all()
        if not batch:
            return
        connection.execute(
            table.update().where(table.c.instance_pk == sa.bindparam("pk")),
            [{"pk": pk, "etag": hashlib.sha256(doc.encode()).hexdigest()} for pk, doc in batch],
        )
        last = batch[-1].instance_pk


def downgrade() -> None:
    with op.batch_alter_table("agreements", schema=None) as batch_op:
        batch_op.drop_column("names_before_claim")
    with op.batch_alter_table("trusts", schema=None) as batch_op:
        batch_op.drop_column("shares_without_pin")
    with op.batch_alter_table("application_entities", schema=None) as batch_op:
        batch_op.drop_column("kind")
    with op.batch_alter_table("instance_metadata", schema=None) as batch_op:
        batch_op.drop_column("etag")
