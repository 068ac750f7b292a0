"""browser sign-ins in flight at the identity provider, shared by every web node

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 16:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oidc_sign_ins",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=False),
        sa.Column("verifier", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("state_hash", name="pk_oidc_sign_ins"),
    )
    op.create_index("ix_oidc_sign_ins_started_at", "oidc_sign_ins", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_oidc_sign_ins_started_at", table_name="oidc_sign_ins")
    op.drop_table("oidc_sign_ins")
