"""Crash- and concurrency-safe cache primitives: an exclusive file lock and atomic writes.

Several deploybench processes (parallel runs, a service and a CLI) may ask for the same
open problem at once. Builders hold :func:`file_lock` on the cache entry while they check and
fill it, and every file is written with :func:`atomic_write_bytes`, so a reader never sees a
half-written file even if a builder is killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the block.

    ``flock`` locks are released by the kernel when the process dies, so a crashed builder
    never leaves the cache locked forever.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either the old or the new bytes.

    The temporary file lives in the same folder because ``os.replace`` is only atomic within
    one filesystem; it is fsynced first so a power loss cannot leave an empty file in place.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; cached artifacts are meant to be readable like any file.
        tmp.chmod(0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_temp_files(folder: Path) -> None:
    """Delete temporary files left by a builder that was killed mid-write.

    Only call this while holding the folder's lock: otherwise it could delete the temporary
    file of a live writer.
    """
    for leftover in folder.glob(f".*{TEMP_SUFFIX}"):
        leftover.unlink(missing_ok=True)
