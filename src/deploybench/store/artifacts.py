"""Content-addressed artifact store: blobs identified by their sha256, verified on read.

:class:`ArtifactStore` is the contract; :class:`FilesystemArtifactStore` the folder backend.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol

from pydantic import BaseModel, ConfigDict

from deploybench.errors import DeploybenchError, UserError
from deploybench.paths import data_home

_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ArtifactNotFoundError(UserError):
    """No artifact with this sha256 is in the store."""

    def __init__(self, sha256: str) -> None:
        super().__init__(f"no artifact {sha256}; write it first or check the sha256")
        self.sha256 = sha256


class ArtifactCorruptedError(DeploybenchError):
    """A stored object no longer matches its sha256 (disk error or tampering)."""

    def __init__(self, sha256: str, path: Path | str, actual: str) -> None:
        super().__init__(
            f"artifact {sha256} is corrupted: {path} has sha256 {actual}; "
            "write the original content again to repair it, or remove it"
        )
        self.sha256, self.path, self.actual = sha256, str(path), actual


class StoreNotWritableError(UserError):
    """The store's data folder cannot be created or written."""

    def __init__(self, folder: Path, reason: str) -> None:
        super().__init__(
            f"artifact store folder {folder} is not writable ({reason}); "
            "set DEPLOYBENCH_HOME to a writable folder or fix the permissions"
        )
        self.folder = folder


class ArtifactInfo(BaseModel):
    """Identity of a stored artifact."""

    model_config = ConfigDict(frozen=True)
    sha256: str
    size: int


class ArtifactStore(Protocol):
    """Content-addressed store of immutable blobs, identified by their sha256.

    Ownership: the store owns its objects; callers get copies (:meth:`materialize`,
    :meth:`read_bytes`) or a read-only handle valid inside :meth:`open_reader`, and never
    modify stored objects. Thread-safety: every method may be called concurrently from any
    number of threads and processes; writes are atomic and idempotent, and every read that
    returns content checks it against its sha256 first.
    """

    def write_file(self, path: Path) -> ArtifactInfo:
        """Store a copy of the file at ``path`` (deduplicated) and return its identity."""

    def write_bytes(self, data: bytes) -> ArtifactInfo:
        """Store ``data`` (deduplicated) and return its identity."""

    def open_reader(self, sha256: str) -> AbstractContextManager[BinaryIO]:
        """Context manager yielding a binary reader positioned at the start of the object.

        The whole object's digest is checked before any byte is handed out; on a mismatch
        :class:`ArtifactCorruptedError` is raised and nothing is served.
        """

    def read_bytes(self, sha256: str) -> bytes:
        """The object's content, verified."""

    def materialize(self, sha256: str, dest: Path) -> Path:
        """Write a verified copy to ``dest`` atomically (replacing it) and return ``dest``.

        On corruption, ``dest`` is left as it was and no partial file is visible.
        """

    def exists(self, sha256: str) -> bool:
        """Whether the object is stored (cheap: its content is not verified)."""

    def size(self, sha256: str) -> int:
        """Stored size in bytes (not verified); :class:`ArtifactNotFoundError` if absent."""

    def verify(self, sha256: str) -> None:
        """Raise :class:`ArtifactCorruptedError` or :class:`ArtifactNotFoundError` if bad."""

    def remove(self, sha256: str) -> bool:
        """Delete the object; ``True`` if it was there (idempotent)."""

    def list_all(self) -> list[str]:
        """Sorted sha256 of every stored object."""


def _copy_hashing(source: BinaryIO, target: BinaryIO | None) -> tuple[str, int]:
    """Stream ``source`` into ``target`` (if any); return (sha256, size)."""
    digest, size = hashlib.sha256(), 0
    while chunk := source.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if target is not None:
            target.write(chunk)
    return digest.hexdigest(), size


def _fsync_dir(folder: Path) -> None:
    """Persist a rename: fsync the folder entry (not possible on Windows, hence optional)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _staged(folder: Path, prefix: str) -> Iterator[tuple[Path, BinaryIO]]:
    """A temp file in ``folder``, deleted if the block fails (a crash leaves it for
    :meth:`FilesystemArtifactStore.clean_temp`); the block renames it into place."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=prefix)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield Path(name), handle
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _seal(handle: BinaryIO) -> None:
    """Flush to disk and close, so a rename never exposes unwritten data."""
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


class FilesystemArtifactStore:
    """:class:`ArtifactStore` in a folder: ``objects/ab/cdef...`` plus ``tmp/`` for writes.

    No state besides its root: instances may be shared by threads and processes. Writes go to
    a temp file in ``tmp/`` (same filesystem: ``os.replace`` is atomic), are fsync'ed and renamed
    into place, so readers never see a partial object and concurrent writers all succeed.
    """

    def __init__(self, root: Path) -> None:
        """Create (if needed) and check the folder; :class:`StoreNotWritableError` if unusable."""
        self.root = Path(root)
        self._objects = self.root / "objects"
        self._tmp = self.root / "tmp"
        try:
            self._objects.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(exist_ok=True)
            # mkdir succeeds on existing read-only folders: probe a real write.
            with _staged(self._tmp, ".probe-") as (probe, _):
                probe.unlink()
        except OSError as exc:
            raise StoreNotWritableError(self.root, exc.strerror or str(exc)) from exc

    @classmethod
    def default(cls) -> FilesystemArtifactStore:
        """The store under :func:`~deploybench.paths.data_home` (``DEPLOYBENCH_HOME``)."""
        return cls(data_home() / "artifacts")  # data_home() explains an unusable folder

    def path_of(self, sha256: str) -> Path:
        """Where the object lives (whether or not it exists); never write to it.

        Every method goes through here, so a malformed id (:class:`ValueError`) can never
        become a path traversal.
        """
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise ValueError(f"invalid sha256 {sha256!r}: expected 64 lowercase hex digits")
        return self._objects / sha256[:2] / sha256[2:]

    def write_file(self, path: Path) -> ArtifactInfo:
        """See :meth:`ArtifactStore.write_file`."""
        with Path(path).open("rb") as source:
            return self.write_stream(source)

    def write_bytes(self, data: bytes) -> ArtifactInfo:
        """See :meth:`ArtifactStore.write_bytes`."""
        return self.write_stream(io.BytesIO(data))

    def write_stream(self, source: BinaryIO) -> ArtifactInfo:
        """Store everything read from ``source`` (read in chunks, hashed while copying)."""
        with _staged(self._tmp, "write-") as (temp, handle):
            sha256, size = _copy_hashing(source, handle)
            _seal(handle)
            final = self.path_of(sha256)
            if self._is_valid(final, sha256, size):
                temp.unlink()  # dedup: never overwrite a good object
            else:
                # Missing or corrupted: the fresh copy wins (atomically, for any reader).
                os.chmod(temp, 0o444)  # objects are immutable
                final.parent.mkdir(exist_ok=True)
                os.replace(temp, final)
                _fsync_dir(final.parent)
        return ArtifactInfo(sha256=sha256, size=size)

    def _is_valid(self, path: Path, sha256: str, size: int) -> bool:
        with contextlib.suppress(FileNotFoundError), path.open("rb") as handle:
            same_size = os.fstat(handle.fileno()).st_size == size
            return same_size and _copy_hashing(handle, None)[0] == sha256
        return False

    def _open(self, sha256: str) -> BinaryIO:
        with contextlib.suppress(FileNotFoundError):
            return self.path_of(sha256).open("rb")
        raise ArtifactNotFoundError(sha256)

    def _check(self, sha256: str, actual: str) -> None:
        if actual != sha256:
            raise ArtifactCorruptedError(sha256, self.path_of(sha256), actual)

    @contextlib.contextmanager
    def open_reader(self, sha256: str) -> Iterator[BinaryIO]:
        """See :meth:`ArtifactStore.open_reader`."""
        # Hash through the very handle we serve: a concurrent replace cannot slip in between.
        with self._open(sha256) as handle:
            self._check(sha256, _copy_hashing(handle, None)[0])
            handle.seek(0)
            yield handle

    def read_bytes(self, sha256: str) -> bytes:
        """See :meth:`ArtifactStore.read_bytes`."""
        with self.open_reader(sha256) as handle:
            return handle.read()

    def materialize(self, sha256: str, dest: Path) -> Path:
        """See :meth:`ArtifactStore.materialize` (verified while copying, one pass)."""
        dest = Path(dest)
        with self._open(sha256) as source:
            dest.parent.mkdir(parents=True, exist_ok=True)
            # The temp file sits next to dest so the final rename is atomic.
            with _staged(dest.parent, f".{dest.name}.") as (temp, handle):
                self._check(sha256, _copy_hashing(source, handle)[0])
                _seal(handle)
                os.chmod(temp, 0o644)
                os.replace(temp, dest)
        return dest

    def exists(self, sha256: str) -> bool:
        """See :meth:`ArtifactStore.exists`."""
        return self.path_of(sha256).is_file()

    def size(self, sha256: str) -> int:
        """See :meth:`ArtifactStore.size`."""
        with contextlib.suppress(FileNotFoundError):
            return self.path_of(sha256).stat().st_size
        raise ArtifactNotFoundError(sha256)

    def verify(self, sha256: str) -> None:
        """See :meth:`ArtifactStore.verify`."""
        with self.open_reader(sha256):
            pass

    def remove(self, sha256: str) -> bool:
        """See :meth:`ArtifactStore.remove`."""
        with contextlib.suppress(FileNotFoundError):
            self.path_of(sha256).unlink()
            return True
        return False

    def list_all(self) -> list[str]:
        """See :meth:`ArtifactStore.list_all`."""
        found = (f"{p.parent.name}{p.name}" for p in self._objects.glob("??/*"))
        return sorted(sha for sha in found if _SHA256.fullmatch(sha))

    def clean_temp(self, older_than_s: float = 3600) -> int:
        """Delete temp files older than ``older_than_s`` (left by crashed writes); return the
        count. Younger ones may belong to a write in progress."""
        cutoff, removed = time.time() - older_than_s, 0
        for path in self._tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed
