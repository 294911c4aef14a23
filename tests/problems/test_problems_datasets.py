"""Datasets as .npz: loading and validation against the model's inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deploybench.errors import DatasetError, UserError
from deploybench.problems.datasets import load_npz, validate_dataset
from deploybench.problems.tensors import TensorSpec

INPUTS = [TensorSpec(name="input", dtype="float32", shape=["N", 4])]


def _good(n: int = 6) -> dict[str, np.ndarray]:
    return {
        "input": np.zeros((n, 4), dtype=np.float32),
        "labels": np.zeros(n, dtype=np.int64),
    }


def _problems(arrays: dict[str, np.ndarray], inputs: list[TensorSpec] = INPUTS) -> str:
    with pytest.raises(DatasetError) as info:
        validate_dataset(arrays, inputs, "my-data")
    message = str(info.value)
    assert message.startswith("dataset my-data does not match the model:")
    return message


def test_dataset_error_is_a_user_error() -> None:
    assert issubclass(DatasetError, UserError)


def test_load_npz_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, **_good())
    arrays = load_npz(path)
    assert set(arrays) == {"input", "labels"}
    assert arrays["input"].dtype == np.float32
    assert arrays["input"].shape == (6, 4)


def test_load_npz_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"does not exist; check problem\.dataset\.path"):
        load_npz(tmp_path / "nope.npz")


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x03\x04 truncated zip"])
def test_load_npz_not_a_zip(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(DatasetError) as info:
        load_npz(path)
    assert str(path) in str(info.value)
    assert "not a readable .npz file" in str(info.value)
    assert "numpy.savez" in str(info.value)


def test_load_npz_refuses_a_renamed_npy(tmp_path: Path) -> None:
    npy = tmp_path / "array.npy"
    np.save(npy, np.zeros(3, np.float32))
    path = npy.rename(tmp_path / "array.npz")
    with pytest.raises(DatasetError, match=r"not a readable \.npz file"):
        load_npz(path)


def test_load_npz_refuses_a_pickle(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "pickled.npz"
    path.write_bytes(pickle.dumps({"input": [1, 2, 3]}))
    with pytest.raises(DatasetError, match=r"not a readable \.npz file"):
        load_npz(path)


def test_load_npz_refuses_object_arrays(tmp_path: Path) -> None:
    path = tmp_path / "objects.npz"
    np.savez(path, input=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DatasetError, match=r"holds object arrays.*plain numeric arrays"):
        load_npz(path)


def test_validate_good_dataset_returns_sample_count() -> None:
    assert validate_dataset(_good(7), INPUTS, "d") == 7


def test_validate_without_labels() -> None:
    assert validate_dataset({"input": np.zeros((3, 4), np.float32)}, INPUTS, "d") == 3


def test_validate_symbolic_dims_accept_any_size() -> None:
    spec = [TensorSpec(name="input", dtype="float32", shape=["N", "S", 2])]
    arrays = {"input": np.zeros((2, 11, 2), np.float32)}
    assert validate_dataset(arrays, spec, "d") == 2


def test_validate_wrong_name() -> None:
    arrays = _good()
    arrays["x"] = arrays.pop("input")
    message = _problems(arrays)
    assert "no array named 'input' for model input input: float32[N, 4]" in message
    assert "arrays present: labels, x" in message
    assert "arrays x match no model input (model inputs: input)" in message


def test_validate_wrong_dtype_suggests_astype() -> None:
    arrays = _good()
    arrays["input"] = arrays["input"].astype(np.float64)
    message = _problems(arrays)
    assert "array 'input' has dtype float64 but the model expects float32" in message
    assert ".astype(numpy.float32)" in message


def test_validate_wrong_rank() -> None:
    arrays = _good()
    arrays["input"] = np.zeros((6, 2, 2), np.float32)
    message = _problems(arrays)
    assert "shape [6, 2, 2] (rank 3)" in message
    assert "has rank 2" in message
    assert "first axis holds the samples" in message


def test_validate_wrong_fixed_dim() -> None:
    arrays = _good()
    arrays["input"] = np.zeros((6, 5), np.float32)
    message = _problems(arrays)
    assert "array 'input' has size 5 on axis 1 but model input input: float32[N, 4] needs 4" in (
        message
    )


def test_validate_batch_dim_is_not_compared() -> None:
    spec = [TensorSpec(name="input", dtype="float32", shape=[1, 4])]
    assert validate_dataset({"input": np.zeros((9, 4), np.float32)}, spec, "d") == 9


def test_validate_sample_count_disagreement() -> None:
    arrays = _good()
    arrays["labels"] = np.zeros(5, np.int64)
    message = _problems(arrays)
    assert "arrays disagree on the number of samples (input=6, labels=5)" in message


def test_validate_sample_count_disagreement_between_inputs() -> None:
    inputs = [*INPUTS, TensorSpec(name="mask", dtype="bool", shape=["N"])]
    arrays = {"input": np.zeros((6, 4), np.float32), "mask": np.zeros(4, bool)}
    assert "input=6, mask=4" in _problems(arrays, inputs)


def test_validate_extra_unknown_arrays() -> None:
    arrays = _good()
    arrays["weights"] = np.zeros(6)
    arrays["ids"] = np.zeros(6)
    message = _problems(arrays)
    assert "arrays ids, weights match no model input" in message
    assert "rename or remove them" in message


def test_validate_targets_is_a_known_key() -> None:
    arrays = {"input": np.zeros((2, 4), np.float32), "targets": np.zeros(2, np.float32)}
    assert validate_dataset(arrays, INPUTS, "d") == 2


def test_validate_zero_samples() -> None:
    message = _problems(_good(0))
    assert "the dataset has no samples" in message


def test_validate_scalar_array_counts_as_no_samples() -> None:
    spec = [TensorSpec(name="input", dtype="float32", shape=[])]
    message = _problems({"input": np.float32(1.0) * np.ones((), np.float32)}, spec)
    assert "no samples" in message


def test_validate_reports_every_problem_at_once() -> None:
    arrays = {"input": np.zeros((6, 5), np.float64), "junk": np.zeros(6)}
    message = _problems(arrays)
    assert "dtype float64" in message
    assert "size 5 on axis 1" in message
    assert "junk" in message
    assert len(message.splitlines()) == 4
