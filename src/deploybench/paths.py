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
    root = Path(env) if env else Path(platformdirs.user_data_dir("deploybench"))
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create the data directory {root} ({exc.strerror}); set DEPLOYBENCH_HOME "
            "to a writable folder"
        ) from None
    if not os.access(root, os.W_OK):
        raise UserError(
            f"the data directory {root} is not writable; set DEPLOYBENCH_HOME to a writable "
            "folder or fix its permissions"
        )
    return root


def zoo_cache_dir() -> Path:
    """Folder where open problems (``zoo:`` names) are built and cached."""
    path = data_home() / "zoo"
    path.mkdir(parents=True, exist_ok=True)
    return path
