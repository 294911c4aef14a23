"""Turn a :class:`~deploybench.spec.Problem` into a :class:`ResolvedProblem`."""

from __future__ import annotations

from pathlib import Path

from deploybench.errors import DatasetError, ModelError
from deploybench.hashing import sha256_file
from deploybench.problems.datasets import load_npz, validate_dataset
from deploybench.problems.model_files import check_model_file, detect_format, inspect_onnx
from deploybench.problems.resolved import ResolvedProblem
from deploybench.spec.problem import Problem, TaskKind


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
        model_format = detect_format(model_path, problem.model.format or "onnx")
        if problem.model.zoo is not None:
            from deploybench import zoo

            task = task or zoo.get_model(problem.model.zoo).task
    elif problem.model.zoo is not None:
        from deploybench import zoo

        zoo_model = zoo.get_model(problem.model.zoo)
        model_path = zoo.build_model(problem.model.zoo).path
        task = task or zoo_model.task
        model_format = "onnx"
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
    if model_format != "onnx":
        raise ModelError(
            f"model format '{model_format}' is not supported yet; export the model to ONNX"
        )
    info = inspect_onnx(model_path)
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
    )
