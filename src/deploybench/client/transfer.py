"""Artifact transfer: content-addressed uploads and verified, atomic downloads."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx

from deploybench.errors import UserError
from deploybench.hashing import sha256_file

CHUNK = 1 << 20


class ChecksumError(UserError):
    """What arrived does not have the sha256 it was asked for."""


def file_chunks(path: Path) -> Iterator[bytes]:
    """Stream a file in chunks, so a large model is never held in memory at once."""
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def upload_request(path: Path) -> tuple[str, dict[str, str], Iterator[bytes]]:
    """(sha256, headers, body) for ``PUT /artifacts/{sha256}``.

    Content-Length is set explicitly so the server can refuse an oversized file (413) before
    reading it, instead of a chunked body of unknown size.
    """
    digest = sha256_file(path)
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Length": str(path.stat().st_size),
    }
    return digest, headers, file_chunks(path)


def save_verified(response: httpx.Response, sha256: str, dest: Path) -> Path:
    """Write a streamed answer to ``dest`` atomically, checking its sha256 on the way.

    The bytes go to a temporary file beside ``dest`` that replaces it only once the digest
    matches, so a dropped connection or a corrupt copy never leaves a plausible file behind.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in response.iter_bytes(CHUNK):
                digest.update(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        if digest.hexdigest() != sha256:
            raise ChecksumError(
                f"artifact {sha256} arrived with sha256 {digest.hexdigest()}; the copy was "
                "corrupted in transit, try again"
            )
        tmp.replace(dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return dest
