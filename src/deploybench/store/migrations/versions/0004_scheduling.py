"""Fair sharing: job priority, declared runtime and placement; target health details;
reservations, the usage ledger, farm-wide switches and broadcasts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the scheduling columns and tables."""
    ts = sa.DateTime(timezone=True)
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("priority", sa.Integer, nullable=False, server_default="0"))
        jobs.add_column(sa.Column("max_runtime_s", sa.Float, nullable=False, server_default="3600"))
        jobs.add_column(
            sa.Column("placement", sa.String(1024), nullable=False, server_default="{}")
        )
        jobs.add_column(sa.Column("purpose", sa.String(16), nullable=False, server_default="run"))
    op.create_index(
        "ix_jobs_queue_heads",
        "jobs",
        ["state", "user_id", "priority", "placement", "submitted_at"],
    )
    with op.batch_alter_table("targets") as targets:
        targets.add_column(sa.Column("health_reason", sa.Text, nullable=True))
        targets.add_column(sa.Column("health_checked_at", ts, nullable=True))
        targets.add_column(sa.Column("maintenance_until", ts, nullable=True))
    op.create_table(
        "reservations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("target_id", sa.Integer, sa.ForeignKey("targets.id"), nullable=False, index=True),
        sa.Column("starts_at", ts, nullable=False),
        sa.Column("ends_at", ts, nullable=False, index=True),
        sa.Column("lend_idle", sa.Boolean, nullable=False),
        sa.Column("note", sa.String(256), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("canceled_at", ts, nullable=True),
    )
    op.create_table(
        "usage",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(64), nullable=False, index=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("target_id", sa.Integer, sa.ForeignKey("targets.id"), nullable=False),
        sa.Column("campaign", sa.String(64), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("started_at", ts, nullable=False),
        sa.Column("ended_at", ts, nullable=True),
        sa.Column("seconds", sa.Float, nullable=True),
    )
    op.create_index("ix_usage_window", "usage", ["ended_at", "user_id"])
    op.create_table(
        "lab_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
    )
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("author_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("expires_at", ts, nullable=True),
    )


def downgrade() -> None:
    """Back to 0003."""
    for table in ("broadcasts", "lab_state", "usage", "reservations"):
        op.drop_table(table)
    with op.batch_alter_table("targets") as targets:
        for column in ("maintenance_until", "health_checked_at", "health_reason"):
            targets.drop_column(column)
    op.drop_index("ix_jobs_queue_heads", table_name="jobs")
    with op.batch_alter_table("jobs") as jobs:
        for column in ("purpose", "placement", "max_runtime_s", "priority"):
            jobs.drop_column(column)
