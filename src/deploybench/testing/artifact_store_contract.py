"""The contract every :class:`~deploybench.store.artifacts.ArtifactStore` passes.

Subclass :class:`ArtifactStoreContract` in a test module, provide a ``store`` fixture (a
fresh, empty store per test) and implement :meth:`ArtifactStoreContract.corrupt`, which
damages one stored object behind the store's back (the backend knows how).

Requires pytest (it is a test-time helper).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deploybench.hashing import sha256_bytes
from deploybench.store.artifacts import (
    ArtifactCorruptedError,
    ArtifactInfo,
    ArtifactNotFoundError,
    ArtifactStore,
)

# Bigger than one read chunk (1 MiB) so streaming code paths are exercised.
_LARGE = bytes(range(256)) * 5000
_UNKNOWN = "0" * 64


class ArtifactStoreContract:
    """Behaviour shared by all artifact stores (see the module docstring for the fixtures).

    Files the tests create go under ``tmp_path / "out"`` (or deeper), so a store may keep
    its own data elsewhere in ``tmp_path``.
    """

    def corrupt(self, store: ArtifactStore, sha256: str) -> None:
        """Change the stored bytes of ``sha256`` without changing its size; backend-specific."""
        raise NotImplementedError(f"{type(self).__name__} must implement corrupt()")

    @pytest.mark.parametrize("data", [b"", b"hello", _LARGE], ids=["empty", "small", "large"])
    def test_bytes_round_trip(self, store: ArtifactStore, data: bytes) -> None:
        """What goes in comes out, with the right sha256 and size."""
        info = store.write_bytes(data)
        assert info == ArtifactInfo(sha256=sha256_bytes(data), size=len(data))
        assert store.read_bytes(info.sha256) == data
        assert store.size(info.sha256) == len(data)
        with store.open_reader(info.sha256) as reader:
            assert reader.read() == data

    def test_file_round_trip(self, store: ArtifactStore, tmp_path: Path) -> None:
        """write_file stores the file's content; it agrees with write_bytes."""
        source = tmp_path / "out" / "model.onnx"
        source.parent.mkdir()
        source.write_bytes(_LARGE)
        info = store.write_file(source)
        assert info == ArtifactInfo(sha256=sha256_bytes(_LARGE), size=len(_LARGE))
        assert store.read_bytes(info.sha256) == _LARGE
        assert store.write_bytes(_LARGE) == info

    def test_same_content_is_stored_once(self, store: ArtifactStore) -> None:
        """Writing the same content twice gives the same info and one object."""
        first = store.write_bytes(b"twice")
        assert store.write_bytes(b"twice") == first
        assert store.list_all() == [first.sha256]

    def test_list_all_is_sorted_and_complete(self, store: ArtifactStore) -> None:
        """Every stored object, sorted; removed ones disappear."""
        assert store.list_all() == []
        shas = [store.write_bytes(bytes([i]) * 10).sha256 for i in range(5)]
        assert store.list_all() == sorted(shas)
        store.remove(shas[0])
        assert store.list_all() == sorted(shas[1:])

    def test_exists_and_remove_are_idempotent(self, store: ArtifactStore) -> None:
        """remove reports whether something was removed; a second remove is harmless."""
        sha = store.write_bytes(b"short-lived").sha256
        assert store.exists(sha)
        assert store.remove(sha) is True
        assert not store.exists(sha)
        assert store.remove(sha) is False
        assert not store.exists(_UNKNOWN)

    def test_unknown_sha_is_not_found(self, store: ArtifactStore, tmp_path: Path) -> None:
        """Reads of a missing object raise ArtifactNotFoundError naming it."""
        with pytest.raises(ArtifactNotFoundError, match=_UNKNOWN):
            store.read_bytes(_UNKNOWN)
        with pytest.raises(ArtifactNotFoundError):
            store.verify(_UNKNOWN)
        with pytest.raises(ArtifactNotFoundError):
            store.size(_UNKNOWN)
        with pytest.raises(ArtifactNotFoundError), store.open_reader(_UNKNOWN):
            pass
        with pytest.raises(ArtifactNotFoundError):
            store.materialize(_UNKNOWN, tmp_path / "out" / "out.bin")
        assert not (tmp_path / "out" / "out.bin").exists()

    @pytest.mark.parametrize(
        "bad",
        ["", "abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65, "../" * 21 + "a", "ab/" + "0" * 61],
    )
    def test_invalid_sha_is_refused(self, store: ArtifactStore, bad: str, tmp_path: Path) -> None:
        """Anything but 64 lowercase hex digits is a ValueError (no path tricks)."""
        for call in (store.exists, store.read_bytes, store.verify, store.remove, store.size):
            with pytest.raises(ValueError, match="sha256"):
                call(bad)
        with pytest.raises(ValueError, match="sha256"), store.open_reader(bad):
            pass
        with pytest.raises(ValueError, match="sha256"):
            store.materialize(bad, tmp_path / "out" / "out.bin")
        assert not (tmp_path / "out").exists()

    def test_corruption_is_detected_everywhere(self, store: ArtifactStore, tmp_path: Path) -> None:
        """A damaged object is never served: every read raises ArtifactCorruptedError."""
        sha = store.write_bytes(_LARGE).sha256
        self.corrupt(store, sha)
        with pytest.raises(ArtifactCorruptedError, match=sha):
            store.verify(sha)
        with pytest.raises(ArtifactCorruptedError):
            store.read_bytes(sha)
        served: list[bytes] = []
        with pytest.raises(ArtifactCorruptedError), store.open_reader(sha) as reader:
            served.append(reader.read(1))
        assert served == [], "open_reader handed out bytes of a corrupted object"
        dest = tmp_path / "out" / "model.bin"
        with pytest.raises(ArtifactCorruptedError):
            store.materialize(sha, dest)
        assert not dest.exists()
        assert not dest.parent.exists() or list(dest.parent.iterdir()) == []

    def test_corrupted_materialize_keeps_previous_dest(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        """Materializing a corrupted object over an existing file leaves that file intact."""
        sha = store.write_bytes(b"payload").sha256
        self.corrupt(store, sha)
        dest = tmp_path / "out" / "model.bin"
        dest.parent.mkdir()
        dest.write_bytes(b"previous")
        with pytest.raises(ArtifactCorruptedError):
            store.materialize(sha, dest)
        assert dest.read_bytes() == b"previous"
        assert [p.name for p in dest.parent.iterdir()] == ["model.bin"], "temp file left over"

    def test_writing_again_repairs_corruption(self, store: ArtifactStore) -> None:
        """Writing the original content again replaces a corrupted object."""
        info = store.write_bytes(b"precious bytes")
        self.corrupt(store, info.sha256)
        assert store.write_bytes(b"precious bytes") == info
        store.verify(info.sha256)
        assert store.read_bytes(info.sha256) == b"precious bytes"

    def test_materialize_writes_a_verified_copy(self, store: ArtifactStore, tmp_path: Path) -> None:
        """dest gets the exact content, parents are created, an old dest is replaced whole."""
        sha = store.write_bytes(_LARGE).sha256
        dest = tmp_path / "out" / "a" / "b" / "model.bin"
        assert store.materialize(sha, dest) == dest
        assert dest.read_bytes() == _LARGE
        dest.write_bytes(b"stale and longer " * 10)
        store.materialize(store.write_bytes(b"new").sha256, dest)
        assert dest.read_bytes() == b"new"
        assert [p.name for p in dest.parent.iterdir()] == ["model.bin"], "temp file left over"
        # The copy is the caller's: changing it does not touch the stored object.
        dest.write_bytes(b"edited")
        store.verify(sha)
