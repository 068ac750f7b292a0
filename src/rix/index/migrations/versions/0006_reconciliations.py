"""outside media reconciled to a trust's own patient records; arrivals by time

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconciliations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("upload_id", sa.String(length=64), nullable=False),
        sa.Column("outside_key", sa.String(length=32), nullable=False),
        sa.Column("outside_patient_id", sa.String(length=64), server_default="", nullable=False),
        sa.Column("outside_issuer", sa.String(length=64), server_default="", nullable=False),
        sa.Column("outside_name", sa.Text(), server_default="", nullable=False),
        sa.Column("outside_birth_date", sa.String(length=16), server_default="", nullable=False),
        sa.Column("outside_sex", sa.String(length=16), server_default="", nullable=False),
        sa.Column("patient_pk", sa.Integer(), nullable=False),
        sa.Column("trust_pk", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=128), server_default="", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_pk"], ["patients.id"], name="fk_reconciliations_patient_pk_patients"
        ),
        sa.ForeignKeyConstraint(
            ["trust_pk"], ["trusts.id"], name="fk_reconciliations_trust_pk_trusts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_reconciliations"),
        sa.UniqueConstraint("upload_id", "outside_key", name="uq_reconciliations_upload_id"),
    )
    op.create_index(
        "ix_reconciliations_patient_pk", "reconciliations", ["patient_pk"], unique=False
    )
    op.create_table(
        "reconciled_instances",
        sa.Column("instance_pk", sa.Integer(), nullable=False),
        sa.Column("reconciliation_pk", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_pk"],
            ["instances.id"],
            name="fk_reconciled_instances_instance_pk_instances",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reconciliation_pk"],
            ["reconciliations.id"],
            name="fk_reconciled_instances_reconciliation_pk_reconciliations",
        ),
        sa.PrimaryKeyConstraint("instance_pk", name="pk_reconciled_instances"),
    )
    op.create_index(
        "ix_reconciled_instances_reconciliation_pk",
        "reconciled_instances",
        ["reconciliation_pk"],
        unique=False,
    )
    # the status page's ingest rate reads the last 24 hours of arrivals
    op.create_index("ix_instances_received_at", "instances", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_instances_received_at", table_name="instances")
    op.drop_index("ix_reconciled_instances_reconciliation_pk", table_name="reconciled_instances")
    op.drop_table("reconciled_instances")
    op.drop_index("ix_reconciliations_patient_pk", table_name="reconciliations")
    op.drop_table("reconciliations")
