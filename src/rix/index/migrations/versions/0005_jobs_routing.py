"""the durable job table, deliveries, routing rules, and a trust's PACS

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 11:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trusts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pacs_ae", sa.String(length=16), server_default="", nullable=False)
        )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("key", sa.String(length=255), nullable=True),
        sa.Column("payload", sa.Text(), server_default="{}", nullable=False),
        sa.Column("label", sa.Text(), server_default="", nullable=False),
        sa.Column("parent_pk", sa.Integer(), nullable=True),
        sa.Column("trust_pk", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("run_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("worker", sa.String(length=128), server_default="", nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["parent_pk"], ["jobs.id"], name="fk_jobs_parent_pk_jobs"),
        sa.ForeignKeyConstraint(["trust_pk"], ["trusts.id"], name="fk_jobs_trust_pk_trusts"),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index(
        "ix_jobs_state_priority_run_at", "jobs", ["state", "priority", "run_at"], unique=False
    )
    op.create_index(
        "ix_jobs_pending_key",
        "jobs",
        ["key"],
        unique=True,
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index("ix_jobs_parent_pk", "jobs", ["parent_pk"], unique=False)
    op.create_table(
        "deliveries",
        sa.Column("destination", sa.String(length=255), nullable=False),
        sa.Column("sop_uid", sa.String(length=64), nullable=False),
        sa.Column("job_pk", sa.Integer(), nullable=False),
        sa.Column("delivered_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["job_pk"], ["jobs.id"], name="fk_deliveries_job_pk_jobs"),
        sa.PrimaryKeyConstraint("destination", "sop_uid", name="pk_deliveries"),
    )
    op.create_table(
        "routing_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_routing_rules"),
        sa.UniqueConstraint("name", name="uq_routing_rules_name"),
    )


def downgrade() -> None:
    op.drop_table("routing_rules")
    op.drop_table("deliveries")
    op.drop_index("ix_jobs_parent_pk", table_name="jobs")
    op.drop_index("ix_jobs_pending_key", table_name="jobs")
    op.drop_index("ix_jobs_state_priority_run_at", table_name="jobs")
    op.drop_table("jobs")
    with op.batch_alter_table("trusts", schema=None) as batch_op:
        batch_op.drop_column("pacs_ae")
