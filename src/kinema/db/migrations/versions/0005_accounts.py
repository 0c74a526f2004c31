"""accounts, API keys, sessions, invites, quotas, alerts, pauses

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 09:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(256), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("cohort", sa.String(64), nullable=False, index=True),
        sa.Column("limits", sa.JSON(), nullable=False),
        sa.Column("disabled_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("password_changed_at", sa.Float(), nullable=True),
        sa.Column("last_enqueue_at", sa.Float(), nullable=True),
    )
    op.create_table(
        "cohorts",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("limits", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "invites",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("cohort", sa.String(64), nullable=False, index=True),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.Column("used_by", sa.String(64), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner_id", sa.String(64), nullable=False, index=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hint", sa.String(16), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("ip_allowlist", sa.JSON(), nullable=False),
        sa.Column("limits", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("last_used_at", sa.Float(), nullable=True),
        sa.Column("last_used_ip", sa.String(64), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("suspended_at", sa.Float(), nullable=True),
        sa.Column("suspend_reason", sa.String(256), nullable=True),
    )
    op.create_table(
        "key_sightings",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("value", sa.String(256), nullable=False),
        sa.Column("first_seen", sa.Float(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
    )
    op.create_index("ux_key_sightings", "key_sightings", ["key_id", "kind", "value"], unique=True)
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False, index=True),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_seen_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False, index=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("read_at", sa.Float(), nullable=True),
    )
    op.create_table(
        "usage_charges",
        sa.Column("video_id", sa.String(64), primary_key=True),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("charged_at", sa.Float(), nullable=False),
        sa.Column("refunded_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_usage_owner_charged", "usage_charges", ["owner_id", "charged_at"])
    op.create_index("ix_usage_key_charged", "usage_charges", ["key_id", "charged_at"])
    op.create_table(
        "pauses",
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("paused_at", sa.Float(), nullable=False),
        sa.Column("paused_by", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(256), nullable=True),
        sa.Column("hold_running", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])  # the transparency report reads by time
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("cohort", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_videos_key_id"), ["key_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_videos_key_id"))
        batch_op.drop_column("cohort")
        batch_op.drop_column("key_id")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    for table in (
        "pauses",
        "usage_charges",
        "alerts",
        "web_sessions",
        "key_sightings",
        "api_keys",
        "invites",
        "cohorts",
        "users",
    ):
        op.drop_table(table)
