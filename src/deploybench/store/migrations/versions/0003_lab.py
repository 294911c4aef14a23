"""The lab: users, API tokens, agents, targets, the job queue and events.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ACTIVE = "state IN ('assigned', 'running')"


def upgrade() -> None:
    """Create the lab tables and the one-active-job-per-target partial unique index."""
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=True),
        sa.Column("email", sa.String(256), nullable=True),
        sa.Column("webhook_url", sa.String(1024), nullable=True),
        sa.Column("created_at", ts, nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("expires_at", ts, nullable=True),
        sa.Column("revoked_at", ts, nullable=True),
        sa.Column("last_used_at", ts, nullable=True),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("last_seen_at", ts, nullable=False),
        sa.Column("created_at", ts, nullable=False),
    )
    op.create_table(
        "targets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("plugin", sa.String(64), nullable=False, index=True),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id"), nullable=False, index=True),
        sa.Column("info", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("health", sa.String(16), nullable=False),
        sa.Column("created_at", ts, nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("campaign", sa.String(64), nullable=False, index=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("wanted_target", sa.String(256), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("target_id", sa.Integer, sa.ForeignKey("targets.id"), nullable=True),
        sa.Column("lease_epoch", sa.Integer, nullable=False),
        sa.Column("lease_expires_at", ts, nullable=True),
        sa.Column("not_before", ts, nullable=True),
        sa.Column("cancel", sa.String(16), nullable=True),
        sa.Column("phase", sa.String(32), nullable=True),
        sa.Column("submitted_at", ts, nullable=False),
        sa.Column("started_at", ts, nullable=True),
        sa.Column("ended_at", ts, nullable=True),
        sa.Column("failure_kind", sa.String(32), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
    )
    op.create_index(
        "uq_jobs_one_active_per_target",
        "jobs",
        ["target_id"],
        unique=True,
        sqlite_where=sa.text(_ACTIVE),
        postgresql_where=sa.text(_ACTIVE),
    )
    op.create_index("ix_jobs_state_submitted", "jobs", ["state", "submitted_at"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", ts, nullable=False, index=True),
        sa.Column("job_id", sa.String(64), nullable=True, index=True),
        sa.Column("user_id", sa.Integer, nullable=True, index=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    """Back to 0002."""
    op.drop_table("events")
    op.drop_index("ix_jobs_state_submitted", table_name="jobs")
    op.drop_index("uq_jobs_one_active_per_target", table_name="jobs")
    for table in ("jobs", "targets", "agents", "api_tokens", "users"):
        op.drop_table(table)
