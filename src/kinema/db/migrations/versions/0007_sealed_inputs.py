"""inputs sealed under likeness keys; attempts per enrolment challenge

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inputs_sealed_by", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("enrolment_challenges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("enrolment_challenges", schema=None) as batch_op:
        batch_op.drop_column("attempts")
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.drop_column("inputs_sealed_by")
