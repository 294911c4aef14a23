"""Turn a :class:`~deploybench.spec.Problem` into a :class:`ResolvedProblem`."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from deploybench.errors import DatasetError, ModelError
from deploybench.hashing import sha256_file
from deploybench.problems.datasets import load_npz, validate_dataset
from deploybench.problems.model_files import (
    ModelInfo,
    check_model_file,
    detect_format,
    inspect_onnx,
)
from deploybench.problems.resolved import ResolvedProblem
from deploybench.problems.tensors import TensorSpec
from deploybench.spec.problem import ModelRef, Problem, TaskKind


def _torch_signature(
    ref: ModelRef,
) -> tuple[str, dict[str, Any], list[TensorSpec], list[str] | None]:
    """Module, kwargs, inputs and output names of a PyTorch model (zoo or user)."""
    if ref.zoo is not None:
        from deploybench import zoo

        zoo_model = zoo.get_model(ref.zoo)
        assert zoo_model.torch_module is not None
        package, class_name = zoo_model.torch_module.split(":")
        found = importlib.util.find_spec(package)
        assert found is not None and found.origin is not None
        spec = TensorSpec(name="input", dtype="float32", shape=list(zoo_model.torch_input_shape))
        return f"{found.origin}:{class_name}", {}, [spec], list(zoo_model.torch_outputs)
    if ref.module is None or ref.inputs is None:
        raise ModelError(
            f"{ref.label} is a PyTorch model: problem.model needs 'module' (file.py:ClassName) "
            "and 'inputs' (name, shape, dtype of each forward() argument)"
        )
    inputs = [TensorSpec(name=i.name, dtype=i.dtype, shape=list(i.shape)) for i in ref.inputs]
    return ref.module, dict(ref.kwargs), inputs, ref.outputs


def _verify_sha(path: Path, expected: str | None, what: str) -> str:
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise (ModelError if what == "model" else DatasetError)(
            f"{what} {path} has sha256 {actual}, not the expected {expected}; "
            "the file changed: restore it or update the sha256"
        )
    return actual


def resolve_problem(
    problem: Problem,
    model_path: Path | None = None,
    dataset_path: Path | None = None,
    expected_outputs_path: Path | None = None,
) -> ResolvedProblem:
    """Locate (building open problems if needed), verify and inspect model and dataset.

    ``model_path`` / ``dataset_path`` replace the files the problem names (a replay runs on
    the stored artifacts, whatever the definition says); the definition still gives the
    task and the expected sha256.
    """
    task = problem.task
    if model_path is not None:
        check_model_file(model_path)
        declared = problem.model.format or ("torch" if problem.model.module else None)
        if problem.model.zoo is not None:
            from deploybench import zoo

            task = task or zoo.get_model(problem.model.zoo).task
            declared = declared or zoo.get_model(problem.model.zoo).format
        model_format = detect_format(model_path, declared or "onnx")
    elif problem.model.zoo is not None:
        from deploybench import zoo

        zoo_model = zoo.get_model(problem.model.zoo)
        model_path = zoo.build_model(problem.model.zoo).path
        task = task or zoo_model.task
        model_format = zoo_model.format
    else:
        assert problem.model.path is not None
        model_path = problem.model.path
        check_model_file(model_path)
        model_format = detect_format(model_path, problem.model.format)
    if dataset_path is None:
        if problem.dataset.zoo is not None:
            from deploybench import zoo

            zoo.get_dataset(problem.dataset.zoo)
            dataset_path = zoo.build_dataset(problem.dataset.zoo).path
        else:
            assert problem.dataset.path is not None
            dataset_path = problem.dataset.path
    torch_module: str | None = None
    torch_kwargs: dict[str, Any] = {}
    info: ModelInfo
    if model_format == "torch":
        from deploybench.problems.torch_model import inspect_torch

        torch_module, torch_kwargs, torch_inputs, output_names = _torch_signature(problem.model)
        info = inspect_torch(model_path, torch_module, torch_kwargs, torch_inputs, output_names)
    elif model_format == "onnx":
        info = inspect_onnx(model_path)
    elif model_format == "sklearn":
        from deploybench.problems.sklearn_model import inspect_sklearn

        info = inspect_sklearn(model_path)
    else:
        raise ModelError(
            f"model format '{model_format}' is not supported yet; export the model to ONNX"
        )
    arrays = load_npz(dataset_path)
    n_samples = validate_dataset(arrays, info.inputs, problem.dataset.label)
    assert task is not None  # enforced by Problem for user models; zoo models know theirs
    if task is TaskKind.REGRESSION and "labels" in arrays and "targets" not in arrays:
        raise DatasetError(f"dataset {problem.dataset.label}: a regression dataset needs 'targets'")
    expected = expected_outputs_path or problem.expected_outputs
    if expected is not None and not expected.is_file():
        raise DatasetError(f"expected outputs file {expected} does not exist")
    return ResolvedProblem(
        model_label=problem.model.label,
        model_path=model_path,
        model_format=model_format,
        model_sha256=_verify_sha(model_path, problem.model.sha256, "model"),
        model_size_bytes=model_path.stat().st_size,
        dataset_label=problem.dataset.label,
        dataset_path=dataset_path,
        dataset_sha256=_verify_sha(dataset_path, problem.dataset.sha256, "dataset"),
        task=task,
        inputs=info.inputs,
        outputs=info.outputs,
        opset=info.opset,
        operators=info.operators,
        n_samples=n_samples,
        expected_outputs_path=expected,
        torch_module=torch_module,
        torch_kwargs=torch_kwargs,
    )
