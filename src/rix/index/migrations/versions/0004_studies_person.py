"""studies carry their patient's person, so the access filter reads one table

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 09:18:25.372813
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("person_pk", sa.Integer(), nullable=True))
        batch_op.create_index("ix_studies_person_pk", ["person_pk"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_studies_person_pk_persons"), "persons", ["person_pk"], ["id"]
        )
    op.execute(
        "UPDATE studies SET person_pk = "
        "(SELECT patients.person_pk FROM patients WHERE patients.id = studies.patient_pk)"
    )


def downgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_studies_person_pk_persons"), type_="foreignkey")
        batch_op.drop_index("ix_studies_person_pk")
        batch_op.drop_column("person_pk")
