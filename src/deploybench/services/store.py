"""Open the configured result store."""

from __future__ import annotations

from deploybench.store.artifacts import FilesystemArtifactStore
from deploybench.store.database import default_url
from deploybench.store.sql import SqlResultStore


def open_store(url: str | None = None) -> SqlResultStore:
    """The store at ``url`` (default: ``DEPLOYBENCH_DB_URL`` or SQLite in the data folder),
    with artifacts under ``DEPLOYBENCH_HOME/artifacts``; migrations are applied on open."""
    return SqlResultStore(url or default_url(), FilesystemArtifactStore.default())
