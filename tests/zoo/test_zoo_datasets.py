"""The open datasets: content, shapes, dtypes, held-out splits and reproducible npz bytes."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from deploybench.hashing import sha256_file
from deploybench.zoo import build_dataset
from deploybench.zoo.datasets import (
    Split,
    diabetes_split,
    digits32_split,
    digits_split,
    npz_bytes,
)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYBENCH_HOME", str(tmp_path / "home"))


def test_digits_dataset_is_the_stratified_held_out_split(tmp_path: Path) -> None:
    artifact = build_dataset("digits")
    # The default cache is DEPLOYBENCH_HOME/zoo.
    assert artifact.path == tmp_path / "home" / "zoo" / "datasets" / "digits-v1" / "dataset.npz"
    with np.load(artifact.path, allow_pickle=False) as data:
        assert sorted(data.files) == ["input", "labels"]
        x, labels = data["input"], data["labels"]
    assert x.shape == (360, 64) and x.dtype == np.float32
    assert labels.shape == (360,) and labels.dtype == np.int64
    assert x.min() >= 0.0 and x.max() <= 1.0
    # Stratified: each of the 10 digits keeps its ~10% share of the 360 samples.
    assert np.bincount(labels, minlength=10).min() >= 35
    assert artifact.manifest["arrays"]["input"] == {"shape": [360, 64], "dtype": "float32"}
    assert artifact.manifest["task"] == "classification"
    assert set(artifact.manifest["tools"]) == {"numpy", "sklearn"}


def test_digits32_holds_the_digits_samples_as_3x32x32_images() -> None:
    artifact = build_dataset("digits32")
    with np.load(artifact.path, allow_pickle=False) as data:
        assert sorted(data.files) == ["input", "labels"]
        images, labels = data["input"], data["labels"]
    digits = digits_split()
    assert images.shape == (360, 3, 32, 32) and images.dtype == np.float32
    assert np.array_equal(labels, digits.y_test)
    # Every channel is the same image; each 4x4 block is one digits pixel.
    assert np.array_equal(images[:, 0], images[:, 2])
    assert np.array_equal(images[:, 1, ::4, ::4].reshape(360, 64), digits.x_test)
    assert np.array_equal(images[:, 1, 3::4, 3::4].reshape(360, 64), digits.x_test)
    assert artifact.manifest["arrays"]["input"] == {"shape": [360, 3, 32, 32], "dtype": "float32"}
    assert digits32_split().x_train.shape == (1437, 3, 32, 32)


def test_diabetes_dataset_is_the_held_out_split(tmp_path: Path) -> None:
    artifact = build_dataset("diabetes", tmp_path / "cache")
    assert artifact.path.is_relative_to(tmp_path / "cache")
    with np.load(artifact.path, allow_pickle=False) as data:
        assert sorted(data.files) == ["input", "targets"]
        x, targets = data["input"], data["targets"]
    assert x.shape == (89, 10) and x.dtype == np.float32
    assert targets.shape == (89,) and targets.dtype == np.float32
    assert artifact.manifest["task"] == "regression"


@pytest.mark.parametrize(("split", "total"), [(digits_split, 1797), (diabetes_split, 442)])
def test_train_and_test_splits_partition_the_data(split: Callable[[], Split], total: int) -> None:
    parts = split()
    assert len(parts.x_train) + len(parts.x_test) == total
    assert len(parts.x_train) == len(parts.y_train)
    # No test row also appears in the train split (the models never see test data).
    train_rows = {row.tobytes() for row in parts.x_train}
    assert not any(row.tobytes() in train_rows for row in parts.x_test)


def test_npz_bytes_are_reproducible_and_loadable() -> None:
    arrays = {"input": np.arange(6, dtype=np.float32).reshape(2, 3), "labels": np.array([1, 0])}
    first, second = npz_bytes(arrays), npz_bytes(arrays)
    assert first == second
    with np.load(io.BytesIO(first), allow_pickle=False) as data:
        np.testing.assert_array_equal(data["input"], arrays["input"])
        np.testing.assert_array_equal(data["labels"], arrays["labels"])
    # No build time leaks into the file: every entry carries the fixed zip epoch.
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_datasets_rebuild_byte_identically_in_another_cache(tmp_path: Path) -> None:
    for name in ("digits", "diabetes"):
        first = build_dataset(name, tmp_path / "a")
        second = build_dataset(name, tmp_path / "b")
        assert first.path != second.path
        assert first.sha256 == second.sha256 == sha256_file(second.path)
        assert first.path.read_bytes() == second.path.read_bytes()
