"""radiology workflow (orders, MPPS, reports, rota, turnaround alerts) and share links

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 16:55:03.461294
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.Text(), server_default="", nullable=False))
    op.create_table(
        "report_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("modality", sa.String(length=16), server_default="", nullable=False),
        sa.Column("body_part", sa.String(length=64), server_default="", nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_templates")),
        sa.UniqueConstraint("name", name=op.f("uq_report_templates_name")),
    )
    op.create_table(
        "turnaround_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), server_default="", nullable=False),
        sa.Column("trust_pk", sa.Integer(), nullable=True),
        sa.Column("study_uid", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), server_default="{}", nullable=False),
        sa.Column("raised_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["trust_pk"], ["trusts.id"], name=op.f("fk_turnaround_alerts_trust_pk_trusts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turnaround_alerts")),
        sa.UniqueConstraint("key", name=op.f("uq_turnaround_alerts_key")),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trust_pk", sa.Integer(), nullable=False),
        sa.Column("patient_pk", sa.Integer(), nullable=False),
        sa.Column("placer_number", sa.String(length=64), server_default="", nullable=False),
        sa.Column("filler_number", sa.String(length=64), server_default="", nullable=False),
        sa.Column("accession_number", sa.String(length=64), server_default="", nullable=False),
        sa.Column(
            "requested_procedure_id", sa.String(length=16), server_default="", nullable=False
        ),
        sa.Column("status", sa.String(length=16), server_default="", nullable=False),
        sa.Column("priority", sa.String(length=16), server_default="", nullable=False),
        sa.Column("modality", sa.String(length=16), server_default="", nullable=False),
        sa.Column("body_part", sa.String(length=64), server_default="", nullable=False),
        sa.Column("procedure_code", sa.String(length=64), server_default="", nullable=False),
        sa.Column("procedure_text", sa.Text(), server_default="", nullable=False),
        sa.Column("subspecialty", sa.String(length=32), server_default="", nullable=False),
        sa.Column("site_code", sa.String(length=16), server_default="", nullable=False),
        sa.Column("station_ae", sa.String(length=16), server_default="", nullable=False),
        sa.Column("ordering_provider", sa.Text(), server_default="", nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("ordered_at", sa.Float(), nullable=True),
        sa.Column("scheduled_at", sa.Float(), nullable=True),
        sa.Column("study_uid", sa.String(length=64), nullable=True),
        sa.Column("requested_study_uid", sa.String(length=64), server_default="", nullable=False),
        sa.Column("source", sa.String(length=8), server_default="", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_pk"], ["patients.id"], name=op.f("fk_orders_patient_pk_patients")
        ),
        sa.ForeignKeyConstraint(
            ["trust_pk"], ["trusts.id"], name=op.f("fk_orders_trust_pk_trusts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_patient_pk", ["patient_pk"], unique=False)
        batch_op.create_index(
            "ix_orders_status_scheduled_at", ["status", "scheduled_at"], unique=False
        )
        batch_op.create_index("ix_orders_study_uid", ["study_uid"], unique=False)
        batch_op.create_index(
            "ix_orders_requested_study_uid", ["requested_study_uid"], unique=False
        )
        batch_op.create_index(
            "ix_orders_trust_pk_accession", ["trust_pk", "accession_number"], unique=False
        )
        batch_op.create_index(
            "ix_orders_trust_pk_placer", ["trust_pk", "placer_number"], unique=False
        )

    op.create_table(
        "report_claims",
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("user_pk", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_pk"], ["users.id"], name=op.f("fk_report_claims_user_pk_users")
        ),
        sa.PrimaryKeyConstraint("study_uid", name=op.f("pk_report_claims")),
    )
    op.create_table(
        "rota_shifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_pk", sa.Integer(), nullable=False),
        sa.Column("trust_pk", sa.Integer(), nullable=True),
        sa.Column("subspecialty", sa.String(length=32), server_default="", nullable=False),
        sa.Column("starts_at", sa.Float(), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["trust_pk"], ["trusts.id"], name=op.f("fk_rota_shifts_trust_pk_trusts")
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"], ["users.id"], name=op.f("fk_rota_shifts_user_pk_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rota_shifts")),
    )
    with op.batch_alter_table("rota_shifts", schema=None) as batch_op:
        batch_op.create_index("ix_rota_shifts_starts_at", ["starts_at"], unique=False)

    op.create_table(
        "shares",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("owner_pk", sa.Integer(), nullable=False),
        sa.Column("trust_pk", sa.Integer(), nullable=False),
        sa.Column("person_pk", sa.Integer(), nullable=True),
        sa.Column("recipient_name", sa.Text(), nullable=False),
        sa.Column("recipient_email", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), server_default="", nullable=False),
        sa.Column("may_download", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("pin_hash", sa.Text(), server_default="", nullable=False),
        sa.Column("pin_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("locked_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("revoked_by", sa.String(length=128), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["owner_pk"], ["users.id"], name=op.f("fk_shares_owner_pk_users")),
        sa.ForeignKeyConstraint(
            ["person_pk"], ["persons.id"], name=op.f("fk_shares_person_pk_persons")
        ),
        sa.ForeignKeyConstraint(
            ["trust_pk"], ["trusts.id"], name=op.f("fk_shares_trust_pk_trusts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shares")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_shares_token_hash")),
    )
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.create_index("ix_shares_owner_pk", ["owner_pk"], unique=False)

    op.create_table(
        "performed_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("order_pk", sa.Integer(), nullable=True),
        sa.Column("trust_pk", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="", nullable=False),
        sa.Column("calling_ae", sa.String(length=16), server_default="", nullable=False),
        sa.Column("study_uid", sa.String(length=64), server_default="", nullable=False),
        sa.Column("accession_number", sa.String(length=64), server_default="", nullable=False),
        sa.Column("modality", sa.String(length=16), server_default="", nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("attributes", sa.Text(), server_default="{}", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_pk"], ["orders.id"], name=op.f("fk_performed_steps_order_pk_orders")
        ),
        sa.ForeignKeyConstraint(
            ["trust_pk"], ["trusts.id"], name=op.f("fk_performed_steps_trust_pk_trusts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_performed_steps")),
        sa.UniqueConstraint("sop_instance_uid", name=op.f("uq_performed_steps_sop_instance_uid")),
    )
    with op.batch_alter_table("performed_steps", schema=None) as batch_op:
        batch_op.create_index("ix_performed_steps_order_pk", ["order_pk"], unique=False)

    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("order_pk", sa.Integer(), nullable=True),
        sa.Column("trust_pk", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="", nullable=False),
        sa.Column("author_pk", sa.Integer(), nullable=True),
        sa.Column("template", sa.String(length=64), server_default="", nullable=False),
        sa.Column("text", sa.Text(), server_default="", nullable=False),
        sa.Column("parent_pk", sa.Integer(), nullable=True),
        sa.Column("sr_instance_uid", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("signed_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["author_pk"], ["users.id"], name=op.f("fk_reports_author_pk_users")
        ),
        sa.ForeignKeyConstraint(
            ["order_pk"], ["orders.id"], name=op.f("fk_reports_order_pk_orders")
        ),
        sa.ForeignKeyConstraint(
            ["parent_pk"], ["reports.id"], name=op.f("fk_reports_parent_pk_reports")
        ),
        sa.ForeignKeyConstraint(
            ["trust_pk"], ["trusts.id"], name=op.f("fk_reports_trust_pk_trusts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
    )
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.create_index("ix_reports_study_uid", ["study_uid"], unique=False)

    op.create_table(
        "share_opinions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("share_pk", sa.Integer(), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("key_images", sa.Text(), server_default="[]", nullable=False),
        sa.Column("sr_instance_uid", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("seen_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["share_pk"], ["shares.id"], name=op.f("fk_share_opinions_share_pk_shares")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_share_opinions")),
    )
    with op.batch_alter_table("share_opinions", schema=None) as batch_op:
        batch_op.create_index("ix_share_opinions_share_pk", ["share_pk"], unique=False)

    op.create_table(
        "share_sessions",
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("share_pk", sa.Integer(), nullable=False),
        sa.Column("verified", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("source", sa.String(length=64), server_default="", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["share_pk"], ["shares.id"], name=op.f("fk_share_sessions_share_pk_shares")
        ),
        sa.PrimaryKeyConstraint("secret_hash", name=op.f("pk_share_sessions")),
    )
    with op.batch_alter_table("share_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_share_sessions_share_pk", ["share_pk"], unique=False)

    op.create_table(
        "share_studies",
        sa.Column("share_pk", sa.Integer(), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["share_pk"], ["shares.id"], name=op.f("fk_share_studies_share_pk_shares")
        ),
        sa.PrimaryKeyConstraint("share_pk", "study_uid", name=op.f("pk_share_studies")),
    )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("email")
    op.drop_table("share_studies")
    with op.batch_alter_table("share_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_share_sessions_share_pk")

    op.drop_table("share_sessions")
    with op.batch_alter_table("share_opinions", schema=None) as batch_op:
        batch_op.drop_index("ix_share_opinions_share_pk")

    op.drop_table("share_opinions")
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_index("ix_reports_study_uid")

    op.drop_table("reports")
    with op.batch_alter_table("performed_steps", schema=None) as batch_op:
        batch_op.drop_index("ix_performed_steps_order_pk")

    op.drop_table("performed_steps")
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.drop_index("ix_shares_owner_pk")

    op.drop_table("shares")
    with op.batch_alter_table("rota_shifts", schema=None) as batch_op:
        batch_op.drop_index("ix_rota_shifts_starts_at")

    op.drop_table("rota_shifts")
    op.drop_table("report_claims")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_trust_pk_placer")
        batch_op.drop_index("ix_orders_trust_pk_accession")
        batch_op.drop_index("ix_orders_study_uid")
        batch_op.drop_index("ix_orders_requested_study_uid")
        batch_op.drop_index("ix_orders_status_scheduled_at")
        batch_op.drop_index("ix_orders_patient_pk")

    op.drop_table("orders")
    op.drop_table("turnaround_alerts")
    op.drop_table("report_templates")
