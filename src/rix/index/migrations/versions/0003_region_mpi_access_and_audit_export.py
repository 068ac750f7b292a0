"""region, mpi, access and audit export

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 07:53:05.976102
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_export",
        sa.Column("destination", sa.String(length=64), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("destination", name=op.f("pk_audit_export")),
    )
    op.create_table(
        "persons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nhs_number", sa.String(length=10), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_persons")),
        sa.UniqueConstraint("nhs_number", name=op.f("uq_persons_nhs_number")),
    )
    op.create_table(
        "trusts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.Column("issuer", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trusts")),
        sa.UniqueConstraint("code", name=op.f("uq_trusts_code")),
        sa.UniqueConstraint("issuer", name=op.f("uq_trusts_issuer")),
    )
    op.create_table(
        "agreements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trust_a", sa.Integer(), nullable=False),
        sa.Column("trust_b", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["trust_a"], ["trusts.id"], name=op.f("fk_agreements_trust_a_trusts")
        ),
        sa.ForeignKeyConstraint(
            ["trust_b"], ["trusts.id"], name=op.f("fk_agreements_trust_b_trusts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agreements")),
        sa.UniqueConstraint("trust_a", "trust_b", name="uq_agreements_trust_a_trust_b"),
    )
    op.create_table(
        "relationships",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trust_pk", sa.Integer(), nullable=False),
        sa.Column("person_pk", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.Text(), server_default="", nullable=False),
        sa.Column("recorded_by", sa.String(length=128), server_default="", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_pk"], ["persons.id"], name=op.f("fk_relationships_person_pk_persons")
        ),
        sa.ForeignKeyConstraint(
            ["trust_pk"], ["trusts.id"], name=op.f("fk_relationships_trust_pk_trusts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_relationships")),
    )
    with op.batch_alter_table("relationships", schema=None) as batch_op:
        batch_op.create_index(
            "ix_relationships_trust_pk_person_pk", ["trust_pk", "person_pk"], unique=False
        )

    op.create_table(
        "sites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trust_pk", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["trust_pk"], ["trusts.id"], name=op.f("fk_sites_trust_pk_trusts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
        sa.UniqueConstraint("trust_pk", "code", name="uq_sites_trust_pk_code"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("display_name", sa.Text(), server_default="", nullable=False),
        sa.Column("trust_pk", sa.Integer(), nullable=True),
        sa.Column("roles", sa.Text(), server_default="", nullable=False),
        sa.Column("password_hash", sa.Text(), server_default="", nullable=False),
        sa.Column("active", sa.Boolean(), server_default="1", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["trust_pk"], ["trusts.id"], name=op.f("fk_users_trust_pk_trusts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "break_glass",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_pk", sa.Integer(), nullable=False),
        sa.Column("person_pk", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_pk"], ["persons.id"], name=op.f("fk_break_glass_person_pk_persons")
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"], ["users.id"], name=op.f("fk_break_glass_user_pk_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_break_glass")),
    )
    with op.batch_alter_table("break_glass", schema=None) as batch_op:
        batch_op.create_index(
            "ix_break_glass_user_pk_person_pk", ["user_pk", "person_pk"], unique=False
        )

    op.create_table(
        "credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_pk", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("label", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_pk"], ["users.id"], name=op.f("fk_credentials_user_pk_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credentials")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_credentials_secret_hash")),
    )
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.create_index("ix_credentials_user_pk", ["user_pk"], unique=False)

    op.create_table(
        "mpi_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_pk", sa.Integer(), nullable=False),
        sa.Column("person_pk", sa.Integer(), nullable=True),
        sa.Column("nhs_number", sa.String(length=16), server_default="", nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("resolved_at", sa.Float(), nullable=True),
        sa.Column("resolution", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_pk"], ["patients.id"], name=op.f("fk_mpi_reviews_patient_pk_patients")
        ),
        sa.ForeignKeyConstraint(
            ["person_pk"], ["persons.id"], name=op.f("fk_mpi_reviews_person_pk_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mpi_reviews")),
    )
    with op.batch_alter_table("mpi_reviews", schema=None) as batch_op:
        batch_op.create_index("ix_mpi_reviews_patient_pk", ["patient_pk"], unique=False)

    with op.batch_alter_table("application_entities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trust_pk", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_application_entities_trust_pk_trusts"), "trusts", ["trust_pk"], ["id"]
        )

    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("trust", sa.String(length=16), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("patient", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(
            sa.Column("nhs_number", sa.String(length=16), server_default="", nullable=False)
        )
        batch_op.create_index("ix_audit_events_actor", ["actor"], unique=False)
        batch_op.create_index("ix_audit_events_nhs_number", ["nhs_number"], unique=False)
        batch_op.create_index("ix_audit_events_study_uid", ["study_uid"], unique=False)

    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("nhs_number", sa.String(length=16), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("person_pk", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("link_state", sa.String(length=16), server_default="", nullable=False)
        )
        batch_op.create_index("ix_patients_nhs_number", ["nhs_number"], unique=False)
        batch_op.create_index("ix_patients_person_pk", ["person_pk"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_patients_person_pk_persons"), "persons", ["person_pk"], ["id"]
        )

    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trust_pk", sa.Integer(), nullable=True))
        batch_op.create_index("ix_studies_trust_pk", ["trust_pk"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_studies_trust_pk_trusts"), "trusts", ["trust_pk"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_studies_trust_pk_trusts"), type_="foreignkey")
        batch_op.drop_index("ix_studies_trust_pk")
        batch_op.drop_column("trust_pk")

    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_patients_person_pk_persons"), type_="foreignkey")
        batch_op.drop_index("ix_patients_person_pk")
        batch_op.drop_index("ix_patients_nhs_number")
        batch_op.drop_column("link_state")
        batch_op.drop_column("person_pk")
        batch_op.drop_column("nhs_number")

    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_study_uid")
        batch_op.drop_index("ix_audit_events_nhs_number")
        batch_op.drop_index("ix_audit_events_actor")
        batch_op.drop_column("nhs_number")
        batch_op.drop_column("patient")
        batch_op.drop_column("trust")

    with op.batch_alter_table("application_entities", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_application_entities_trust_pk_trusts"), type_="foreignkey"
        )
        batch_op.drop_column("trust_pk")

    with op.batch_alter_table("mpi_reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_mpi_reviews_patient_pk")

    op.drop_table("mpi_reviews")
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.drop_index("ix_credentials_user_pk")

    op.drop_table("credentials")
    with op.batch_alter_table("break_glass", schema=None) as batch_op:
        batch_op.drop_index("ix_break_glass_user_pk_person_pk")

    op.drop_table("break_glass")
    op.drop_table("users")
    op.drop_table("sites")
    with op.batch_alter_table("relationships", schema=None) as batch_op:
        batch_op.drop_index("ix_relationships_trust_pk_person_pk")

    op.drop_table("relationships")
    op.drop_table("agreements")
    op.drop_table("trusts")
    op.drop_table("persons")
    op.drop_table("audit_export")
