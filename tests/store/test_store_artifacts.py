"""FilesystemArtifactStore: the shipped contract plus what only a folder backend can show
(layout, atomic writes, several processes, permissions, temp cleanup)."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from deploybench.errors import UserError
from deploybench.hashing import sha256_bytes
from deploybench.store.artifacts import (
    ArtifactCorruptedError,
    ArtifactStore,
    FilesystemArtifactStore,
    StoreNotWritableError,
)
from deploybench.testing.artifact_store_contract import ArtifactStoreContract

# 3 MiB (several chunks, so concurrent writes overlap); deterministic: spawned children rebuild it.
_SHARED = bytes(range(251)) * 12_600


@pytest.fixture
def fs_store(tmp_path: Path) -> FilesystemArtifactStore:
    return FilesystemArtifactStore(tmp_path / "artifacts")


class TestFilesystemArtifactStoreContract(ArtifactStoreContract):
    @pytest.fixture
    def store(self, fs_store: FilesystemArtifactStore) -> ArtifactStore:
        return fs_store

    def corrupt(self, store: ArtifactStore, sha256: str) -> None:
        assert isinstance(store, FilesystemArtifactStore)
        path = store.path_of(sha256)
        path.chmod(0o644)  # objects are read-only on purpose
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        path.chmod(0o444)


def _visible_files(store: FilesystemArtifactStore) -> list[Path]:
    return [p for p in (store.root / "objects").rglob("*") if p.is_file()]


def test_layout_fans_out_and_objects_are_read_only(fs_store: FilesystemArtifactStore) -> None:
    sha = fs_store.write_bytes(b"layout").sha256
    path = fs_store.root / "objects" / sha[:2] / sha[2:]
    assert path == fs_store.path_of(sha)
    assert path.read_bytes() == b"layout"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert list((fs_store.root / "tmp").iterdir()) == []


def test_corruption_message_names_sha_path_and_digest(fs_store: FilesystemArtifactStore) -> None:
    sha = fs_store.write_bytes(b"abc").sha256
    path = fs_store.path_of(sha)
    path.chmod(0o644)
    path.write_bytes(b"abd")
    with pytest.raises(ArtifactCorruptedError) as caught:
        fs_store.verify(sha)
    message = str(caught.value)
    assert sha in message and str(path) in message and sha256_bytes(b"abd") in message


class _FailingReader:
    """A source that breaks after some bytes, like a dropped network stream."""

    def __init__(self, good: int) -> None:
        self.left = good

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise OSError("connection reset")
        chunk = min(self.left, 1000)
        self.left -= chunk
        return b"x" * chunk


def test_source_failing_midway_leaves_nothing(fs_store: FilesystemArtifactStore) -> None:
    with pytest.raises(OSError, match="connection reset"):
        fs_store.write_stream(_FailingReader(5000))  # type: ignore[arg-type]
    assert _visible_files(fs_store) == []
    assert list((fs_store.root / "tmp").iterdir()) == []
    assert fs_store.list_all() == []


def test_failed_rename_leaves_no_object(
    fs_store: FilesystemArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_replace(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        fs_store.write_bytes(_SHARED)
    monkeypatch.undo()
    assert _visible_files(fs_store) == []
    assert list((fs_store.root / "tmp").iterdir()) == []
    assert not fs_store.exists(sha256_bytes(_SHARED))


def test_crash_leftovers_are_invisible_and_cleaned(fs_store: FilesystemArtifactStore) -> None:
    tmp = fs_store.root / "tmp"
    old, young = tmp / "write-old", tmp / "write-young"
    old.write_bytes(b"partial")
    young.write_bytes(b"in progress")
    an_hour_ago = time.time() - 7200
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert fs_store.list_all() == []
    assert fs_store.clean_temp(older_than_s=3600) == 1
    assert [p.name for p in tmp.iterdir()] == ["write-young"]
    assert fs_store.clean_temp(older_than_s=0) == 1


def _writer(root: str, index: int, go: Any) -> None:
    """Child process: wait for the signal, then write shared and own content repeatedly."""
    store = FilesystemArtifactStore(Path(root))
    go.wait(30)
    own = f"process {index}".encode() * 1000
    for _ in range(5):
        assert store.write_bytes(_SHARED).sha256 == sha256_bytes(_SHARED)
        assert store.write_bytes(own).sha256 == sha256_bytes(own)
        assert store.read_bytes(sha256_bytes(_SHARED)) == _SHARED


def test_concurrent_processes_write_safely(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    workers = [ctx.Process(target=_writer, args=(str(root), i, go)) for i in range(4)]
    for worker in workers:
        worker.start()
    go.set()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    store = FilesystemArtifactStore(root)
    expected = {sha256_bytes(_SHARED)} | {
        sha256_bytes(f"process {i}".encode() * 1000) for i in range(4)
    }
    assert set(store.list_all()) == expected
    for sha in expected:
        store.verify(sha)
    assert list((root / "tmp").iterdir()) == []


def test_unwritable_folder_is_a_user_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root ignores permission bits; a path under a regular file fails for everyone.
        (tmp_path / "file.txt").write_text("not a folder")
        root = tmp_path / "file.txt" / "sub"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        root = locked / "artifacts"
    with pytest.raises(StoreNotWritableError) as caught:
        FilesystemArtifactStore(root)
    assert isinstance(caught.value, UserError)
    assert str(root) in str(caught.value)
    assert "set DEPLOYBENCH_HOME to a writable folder" in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses permission bits")
def test_existing_read_only_store_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    FilesystemArtifactStore(root)
    for folder in (root / "tmp", root / "objects", root):
        folder.chmod(0o555)
    try:
        with pytest.raises(StoreNotWritableError, match="fix the permissions"):
            FilesystemArtifactStore(root)
    finally:
        for folder in (root, root / "objects", root / "tmp"):
            folder.chmod(0o755)


def test_default_store_lives_in_deploybench_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOYBENCH_HOME", str(tmp_path / "home"))
    assert FilesystemArtifactStore.default().root == tmp_path / "home" / "artifacts"
    (tmp_path / "file.txt").write_text("not a folder")
    monkeypatch.setenv("DEPLOYBENCH_HOME", str(tmp_path / "file.txt" / "home"))
    with pytest.raises(UserError, match="DEPLOYBENCH_HOME"):
        FilesystemArtifactStore.default()
