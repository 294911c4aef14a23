"""Alembic environment: runs on the connection deploybench hands over (no alembic.ini)."""

from __future__ import annotations

from alembic import context

import deploybench.store.lab_models  # noqa: F401  (registers the lab tables on Base)
from deploybench.store.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite can only alter tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
