"""The zoo cache: reuse, corruption recovery, atomic writes and cross-process locking."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deploybench.hashing import sha256_file
from deploybench.zoo import build_dataset, build_model
from deploybench.zoo.artifact import Built
from deploybench.zoo.build import MODEL_BUILDERS
from deploybench.zoo.cache import atomic_write_bytes, file_lock

# diabetes-linear builds in ~0.1 s, so it stands in for every model in the cache logic.
MODEL = "diabetes-linear"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYBENCH_HOME", str(tmp_path / "home"))


@pytest.fixture
def build_count(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of the diabetes-linear builder (one list element per build)."""
    calls: list[int] = []
    real = MODEL_BUILDERS[MODEL]

    def counting() -> Built:
        calls.append(1)
        return real()

    monkeypatch.setitem(MODEL_BUILDERS, MODEL, counting)
    return calls


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.name != ".lock"}


def test_cache_layout_and_manifest_file(tmp_path: Path) -> None:
    artifact = build_model(MODEL, tmp_path)
    entry = tmp_path / "models" / f"{MODEL}-v1"
    assert artifact.path == entry / "model.onnx"
    manifest = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))
    assert manifest == artifact.manifest
    assert manifest["sha256"] == sha256_file(artifact.path)
    assert manifest["file"] == "model.onnx"


def test_cached_model_is_reused_without_rebuilding(tmp_path: Path, build_count: list[int]) -> None:
    first = build_model(MODEL, tmp_path)
    before = _mtimes(first.path.parent)
    second = build_model(MODEL, tmp_path)
    assert build_count == [1]
    assert second == first
    assert _mtimes(first.path.parent) == before


def test_default_cache_dir_is_under_deploybench_home(tmp_path: Path) -> None:
    artifact = build_model(MODEL)
    assert artifact.path == tmp_path / "home" / "zoo" / "models" / f"{MODEL}-v1" / "model.onnx"


def test_corrupted_cached_model_is_rebuilt(tmp_path: Path, build_count: list[int]) -> None:
    original = build_model(MODEL, tmp_path)
    good_bytes = original.path.read_bytes()
    original.path.write_bytes(good_bytes[:-7] + b"garbage")

    repaired = build_model(MODEL, tmp_path)

    assert build_count == [1, 1]
    assert repaired.sha256 == original.sha256
    assert repaired.path.read_bytes() == good_bytes


def test_corrupted_cached_dataset_is_rebuilt(tmp_path: Path) -> None:
    original = build_dataset("diabetes", tmp_path)
    good_bytes = original.path.read_bytes()
    original.path.write_bytes(b"")
    assert build_dataset("diabetes", tmp_path).path.read_bytes() == good_bytes


@pytest.mark.parametrize("damage", ["delete-model", "delete-manifest", "garble-manifest"])
def test_incomplete_entry_is_rebuilt(tmp_path: Path, build_count: list[int], damage: str) -> None:
    original = build_model(MODEL, tmp_path)
    manifest = original.path.parent / "manifest.json"
    if damage == "delete-model":
        original.path.unlink()
    elif damage == "delete-manifest":
        manifest.unlink()
    else:
        manifest.write_text("{not json", encoding="utf-8")

    rebuilt = build_model(MODEL, tmp_path)

    assert build_count == [1, 1]
    assert rebuilt.sha256 == original.sha256 == sha256_file(rebuilt.path)
    assert json.loads(manifest.read_text(encoding="utf-8"))["sha256"] == original.sha256


def test_failed_build_leaves_no_artifact_and_later_build_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash() -> Built:
        raise RuntimeError("training diverged")

    with monkeypatch.context() as patch:
        patch.setitem(MODEL_BUILDERS, MODEL, crash)
        with pytest.raises(RuntimeError, match="training diverged"):
            build_model(MODEL, tmp_path)
    entry = tmp_path / "models" / f"{MODEL}-v1"
    assert sorted(p.name for p in entry.iterdir()) == [".lock"]
    assert build_model(MODEL, tmp_path).path.is_file()


def test_leftover_temp_files_of_a_killed_builder_are_removed(tmp_path: Path) -> None:
    entry = tmp_path / "models" / f"{MODEL}-v1"
    entry.mkdir(parents=True)
    leftover = entry / ".model.onnx.abc123.tmp"
    leftover.write_bytes(b"half a model")
    build_model(MODEL, tmp_path)
    assert not leftover.exists()
    assert sorted(p.name for p in entry.iterdir()) == [".lock", "manifest.json", "model.onnx"]


def test_atomic_write_replaces_content_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_file_lock_blocks_another_process_until_released(tmp_path: Path) -> None:
    lock = tmp_path / "entry" / ".lock"
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from deploybench.zoo.cache import file_lock
        with file_lock(Path({str(lock)!r})):
            print("acquired", flush=True)
        """
    )
    with file_lock(lock):
        waiter = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                waiter.wait(timeout=1.5)
        except BaseException:
            waiter.kill()
            raise
    out, _ = waiter.communicate(timeout=30)
    assert waiter.returncode == 0
    assert out.strip() == "acquired"


def test_concurrent_processes_build_once_and_agree(tmp_path: Path) -> None:
    # digits-mlp takes ~2 s to train, so two processes started together overlap for sure;
    # the lock must make the second wait and then reuse the first one's artifact.
    cache = tmp_path / "shared-cache"
    code = textwrap.dedent(
        f"""
        import logging, sys
        from pathlib import Path
        from deploybench.zoo import build_model
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        print(build_model("digits-mlp", Path({str(cache)!r})).sha256)
        """
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [w.communicate(timeout=120) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], results
    digests = {out.strip() for out, _ in results}
    builds = sum(err.count("building open model") for _, err in results)
    assert builds == 1, results
    (digest,) = digests
    entry = cache / "models" / "digits-mlp-v1"
    assert sha256_file(entry / "model.onnx") == digest
    assert sorted(p.name for p in entry.iterdir()) == [".lock", "manifest.json", "model.onnx"]
