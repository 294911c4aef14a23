"""Queryable metrics, steps and logs; runs link to the run they replay.

Existing runs are back-filled from their stored records, so a database created by 0001 keeps
every figure queryable after the upgrade.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _record(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


def upgrade() -> None:
    """Add the tables and the column, then back-fill them from the run records."""
    from deploybench.store.flatten import metric_rows

    metrics = op.create_table(
        "metrics",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "run_id",
            sa.String(64),
            sa.ForeignKey("runs.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("statistic", sa.String(128), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("unit", sa.String(32), nullable=True),
    )
    op.create_index("ix_metrics_name_statistic", "metrics", ["name", "statistic"])
    steps = op.create_table(
        "steps",
        sa.Column(
            "run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("tool", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("log", sa.Text, nullable=False),
    )
    logs = op.create_table(
        "logs",
        sa.Column(
            "run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("replay_of", sa.String(64), nullable=True))
        batch.create_index("ix_runs_replay_of", ["replay_of"])

    bind = op.get_bind()
    runs = sa.table("runs", sa.column("id"), sa.column("record"))
    artifacts = sa.table("artifacts", sa.column("sha256"), sa.column("size"))
    sizes = {row.sha256: row.size for row in bind.execute(sa.select(artifacts))}
    for run in bind.execute(sa.select(runs.c.id, runs.c.record)).all():
        record = _record(run.record)
        rows = [
            {
                "run_id": run.id,
                "name": m.name,
                "statistic": m.statistic,
                "value": m.value,
                "unit": m.unit,
            }
            for m in metric_rows(record.get("metrics", {}))
        ]
        if rows:
            bind.execute(metrics.insert(), rows)
        step_rows = [
            {
                "run_id": run.id,
                "position": i,
                "name": s["name"],
                "tool": s["tool"],
                "version": s["version"],
                "seconds": s["seconds"],
                "parameters": s.get("parameters", {}),
                "log": s.get("log", ""),
            }
            for i, s in enumerate(record.get("steps", []))
        ]
        if step_rows:
            bind.execute(steps.insert(), step_rows)
        log_sha = record.get("artifacts", {}).get("log")
        if log_sha:
            bind.execute(
                logs.insert(),
                [
                    {
                        "run_id": run.id,
                        "name": "run",
                        "sha256": log_sha,
                        "size": sizes.get(log_sha, 0),
                    }
                ],
            )


def downgrade() -> None:
    """Back to 0001."""
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_replay_of")
        batch.drop_column("replay_of")
    op.drop_table("logs")
    op.drop_table("steps")
    op.drop_index("ix_metrics_name_statistic", table_name="metrics")
    op.drop_table("metrics")
