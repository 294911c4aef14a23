"""Initial schema: experiments, runs, artifacts and the run → artifact links.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the first four tables."""
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, index=True),
        sa.Column("canonical_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False, index=True
        ),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("provenance", sa.String(16), nullable=False),
        sa.Column("toolchain", sa.String(64), nullable=False, index=True),
        sa.Column("target", sa.String(64), nullable=False, index=True),
        sa.Column("owner", sa.String(128), nullable=True, index=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        sa.Column("record_sha256", sa.String(64), nullable=False),
        sa.Column("manifest", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "artifacts",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("media_type", sa.String(128), nullable=False),
        sa.Column("refcount", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "run_artifacts",
        sa.Column(
            "run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column(
            "sha256", sa.String(64), sa.ForeignKey("artifacts.sha256"), nullable=False, index=True
        ),
    )


def downgrade() -> None:
    """Drop everything."""
    for table in ("run_artifacts", "artifacts", "runs", "experiments"):
        op.drop_table(table)
