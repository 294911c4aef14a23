"""resolve_problem: open problems from the zoo and user files, verified and inspected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deploybench.errors import DatasetError, ModelError
from deploybench.hashing import sha256_file
from deploybench.problems import ResolvedProblem, TensorSpec, resolve_problem
from deploybench.spec import Problem, TaskKind


def _problem(**data: Any) -> Problem:
    return Problem.model_validate(data)


@pytest.fixture()
def user_dataset(tmp_path: Path) -> Path:
    path = tmp_path / "data.npz"
    np.savez(
        path,
        input=np.random.default_rng(0).random((5, 4), dtype=np.float32),
        labels=np.arange(5, dtype=np.int64) % 3,
    )
    return path


def test_resolve_zoo_problem(zoo_home: Path) -> None:
    resolved = resolve_problem(_problem(model="zoo:digits-mlp", dataset="zoo:digits"))
    assert isinstance(resolved, ResolvedProblem)
    assert resolved.model_label == "zoo:digits-mlp"
    assert resolved.dataset_label == "zoo:digits"
    assert resolved.task is TaskKind.CLASSIFICATION
    assert resolved.model_format == "onnx"
    assert resolved.model_path.is_file()
    assert resolved.model_path.is_relative_to(zoo_home)
    assert resolved.dataset_path.is_relative_to(zoo_home)
    assert resolved.model_sha256 == sha256_file(resolved.model_path)
    assert resolved.dataset_sha256 == sha256_file(resolved.dataset_path)
    assert resolved.model_size_bytes == resolved.model_path.stat().st_size
    assert resolved.inputs == [TensorSpec(name="input", dtype="float32", shape=["N", 64])]
    assert [o.name for o in resolved.outputs] == ["logits"]
    assert resolved.outputs[0].shape == ["N", 10]
    assert resolved.opset == 17
    assert resolved.n_samples == 360
    inputs = resolved.load_inputs(limit=3)
    assert inputs["input"].shape == (3, 64)
    truth = resolved.load_truth(limit=3)
    assert truth is not None
    assert truth.shape == (3,)


def test_resolve_zoo_sha256_pin(zoo_home: Path) -> None:
    first = resolve_problem(_problem(model="zoo:digits-mlp", dataset="zoo:digits"))
    pinned = _problem(
        model={"zoo": "digits-mlp", "sha256": first.model_sha256},
        dataset={"zoo": "digits", "sha256": first.dataset_sha256},
    )
    assert resolve_problem(pinned).model_sha256 == first.model_sha256
    wrong = _problem(model={"zoo": "digits-mlp", "sha256": "0" * 64}, dataset="zoo:digits")
    with pytest.raises(ModelError, match="not the expected 0000"):
        resolve_problem(wrong)


def test_resolve_unknown_zoo_names() -> None:
    with pytest.raises(ModelError, match=r"unknown open model \'nope\'; known: .*digits-mlp"):
        resolve_problem(_problem(model="zoo:nope", dataset="zoo:digits"))
    with pytest.raises(DatasetError, match=r"unknown open dataset \'nope\'; known: .*digits"):
        resolve_problem(_problem(model="zoo:digits-mlp", dataset="zoo:nope"))


def test_resolve_zoo_model_with_incompatible_zoo_dataset() -> None:
    with pytest.raises(DatasetError, match=r"size 64 on axis 1 .* needs 10"):
        resolve_problem(_problem(model="zoo:diabetes-linear", dataset="zoo:digits"))


def test_resolve_user_files(tiny_model: Path, user_dataset: Path) -> None:
    resolved = resolve_problem(
        _problem(model={"path": str(tiny_model)}, dataset=str(user_dataset), task="classification")
    )
    assert resolved.model_path == tiny_model
    assert resolved.model_label == str(tiny_model)
    assert resolved.task is TaskKind.CLASSIFICATION
    assert resolved.inputs == [TensorSpec(name="input", dtype="float32", shape=["N", 4])]
    assert resolved.operators == ["Add", "MatMul"]
    assert resolved.n_samples == 5
    assert resolved.model_sha256 == sha256_file(tiny_model)


def test_resolve_user_model_with_zoo_dataset_mismatch(tiny_model: Path) -> None:
    problem = _problem(model=str(tiny_model), dataset="zoo:digits", task="classification")
    with pytest.raises(DatasetError, match="size 64 on axis 1"):
        resolve_problem(problem)


def test_resolve_sha256_mismatch(tiny_model: Path, user_dataset: Path) -> None:
    problem = _problem(
        model={"path": str(tiny_model), "sha256": "a" * 64},
        dataset=str(user_dataset),
        task="classification",
    )
    with pytest.raises(ModelError) as info:
        resolve_problem(problem)
    message = str(info.value)
    assert f"has sha256 {sha256_file(tiny_model)}, not the expected {'a' * 64}" in message
    assert "restore it or update the sha256" in message


def test_resolve_dataset_sha256_mismatch(tiny_model: Path, user_dataset: Path) -> None:
    problem = _problem(
        model=str(tiny_model),
        dataset={"path": str(user_dataset), "sha256": "b" * 64},
        task="classification",
    )
    with pytest.raises(DatasetError, match=r"not the expected b{64}"):
        resolve_problem(problem)


def test_resolve_missing_user_model(tmp_path: Path, user_dataset: Path) -> None:
    problem = _problem(model=str(tmp_path / "x.onnx"), dataset=str(user_dataset), task="regression")
    with pytest.raises(ModelError, match="does not exist"):
        resolve_problem(problem)


def test_resolve_missing_user_dataset(tiny_model: Path, tmp_path: Path) -> None:
    problem = _problem(model=str(tiny_model), dataset=str(tmp_path / "d.npz"), task="regression")
    with pytest.raises(DatasetError, match="does not exist"):
        resolve_problem(problem)


def test_resolve_torch_model_needs_its_module_and_inputs(
    tmp_path: Path, user_dataset: Path
) -> None:
    model = tmp_path / "m.pt"
    model.write_bytes(b"not really torch")
    problem = _problem(model=str(model), dataset=str(user_dataset), task="classification")
    with pytest.raises(ModelError, match=r"is a PyTorch model: problem\.model needs 'module'"):
        resolve_problem(problem)


def test_resolve_unknown_suffix(tmp_path: Path, user_dataset: Path) -> None:
    model = tmp_path / "m.bin"
    model.write_bytes(b"\x00\x01")
    problem = _problem(model=str(model), dataset=str(user_dataset), task="classification")
    with pytest.raises(ModelError, match="cannot tell the format"):
        resolve_problem(problem)


def test_resolve_corrupt_onnx(tmp_path: Path, user_dataset: Path) -> None:
    model = tmp_path / "corrupt.onnx"
    model.write_bytes(b"\xff" * 64)
    problem = _problem(model=str(model), dataset=str(user_dataset), task="classification")
    with pytest.raises(ModelError, match=r"corrupt\.onnx is not a valid ONNX model"):
        resolve_problem(problem)


def test_resolve_regression_needs_targets(tiny_model: Path, user_dataset: Path) -> None:
    problem = _problem(model=str(tiny_model), dataset=str(user_dataset), task="regression")
    with pytest.raises(DatasetError, match="regression dataset needs 'targets'"):
        resolve_problem(problem)


def test_resolve_missing_expected_outputs(
    tiny_model: Path, user_dataset: Path, tmp_path: Path
) -> None:
    problem = _problem(
        model=str(tiny_model),
        dataset=str(user_dataset),
        task="classification",
        expected_outputs=str(tmp_path / "expected.npz"),
    )
    with pytest.raises(DatasetError, match=r"expected outputs file .* does not exist"):
        resolve_problem(problem)
