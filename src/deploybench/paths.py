"""Where deploybench keeps its data: ``DEPLOYBENCH_HOME`` or a per-user data folder."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from deploybench.errors import UserError


def data_home() -> Path:
    """Return the data directory, creating it if needed.

    ``DEPLOYBENCH_HOME`` wins when set, so tests and CI can use a throw-away folder.
    """
    env = os.environ.get("DEPLOYBENCH_HOME")
    return ensure_writable_dir(
        Path(env) if env else Path(platformdirs.user_data_dir("deploybench"))
    )


def ensure_writable_dir(folder: Path) -> Path:
    """Create ``folder`` if needed; a clear :class:`UserError` when it cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create the data directory {folder} ({exc.strerror}); set "
            "DEPLOYBENCH_HOME to a writable folder"
        ) from None
    if not os.access(folder, os.W_OK):
        raise UserError(
            f"the data directory {folder} is not writable; set DEPLOYBENCH_HOME to a writable "
            "folder or fix its permissions"
        )
    return folder


def zoo_cache_dir() -> Path:
    """Folder where open problems (``zoo:`` names) are built and cached."""
    path = data_home() / "zoo"
    path.mkdir(parents=True, exist_ok=True)
    return path
