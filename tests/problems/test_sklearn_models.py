"""scikit-learn models (.skops): safe loading, resolution, refusals, the digits-forest zoo model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deploybench.errors import DatasetError, ModelError
from deploybench.problems import resolve_problem
from deploybench.problems.model_files import detect_format
from deploybench.problems.sklearn_model import load_sklearn_model
from deploybench.spec import Problem
from deploybench.spec.problem import TaskKind
from deploybench.zoo import build_model, get_model

N_FEATURES = 5


class NotAnEstimator:
    """A custom class: skops can save it, deploybench must refuse to build it."""

    def __init__(self) -> None:
        self.weights = [1.0, 2.0]


def _data(n: int = 60, features: int = N_FEATURES) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((n, features), dtype=np.float32)
    return x, (np.arange(n) % 3).astype(np.int64)


def _save(obj: Any, path: Path) -> Path:
    import skops.io as sio

    sio.dump(obj, path)
    return path


def _fitted(kind: str) -> Any:
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    classes = {
        "DecisionTreeClassifier": DecisionTreeClassifier,
        "RandomForestClassifier": RandomForestClassifier,
        "ExtraTreesClassifier": ExtraTreesClassifier,
        "LogisticRegression": LogisticRegression,
    }
    x, y = _data()
    options = {} if kind == "LogisticRegression" else {"random_state": 0}
    if kind != "DecisionTreeClassifier" and kind != "LogisticRegression":
        options["n_estimators"] = 3
    return classes[kind](**options).fit(x, y)


def _dataset(path: Path, features: int = N_FEATURES) -> Path:
    x, y = _data(features=features)
    np.savez(path, input=x, labels=y)
    return path


def _problem(model: Path, dataset: Path) -> Problem:
    return Problem.model_validate(
        {"model": {"path": str(model)}, "dataset": {"path": str(dataset)}, "task": "classification"}
    )


@pytest.mark.parametrize(
    "kind", ["DecisionTreeClassifier", "RandomForestClassifier", "ExtraTreesClassifier"]
)
def test_a_skops_tree_ensemble_resolves_to_its_signature(tmp_path: Path, kind: str) -> None:
    model = _save(_fitted(kind), tmp_path / "model.skops")
    resolved = resolve_problem(_problem(model, _dataset(tmp_path / "data.npz")))
    assert resolved.model_format == "sklearn"
    assert resolved.task is TaskKind.CLASSIFICATION
    assert [(s.name, s.dtype, s.shape) for s in resolved.inputs] == [
        ("input", "float32", ["N", N_FEATURES])
    ]
    assert [(s.name, s.dtype, s.shape) for s in resolved.outputs] == [
        ("probabilities", "float32", ["N", 3])
    ]
    assert resolved.operators == [kind]
    assert resolved.opset is None
    assert resolved.n_samples == 60


def test_the_format_comes_from_the_suffix_or_the_declaration(tmp_path: Path) -> None:
    assert detect_format(tmp_path / "m.skops") == "sklearn"
    assert detect_format(tmp_path / "m.bin", "sklearn") == "sklearn"
    with pytest.raises(ModelError, match="known formats: onnx, torch, sklearn"):
        detect_format(tmp_path / "m.bin", "xgboost")


def test_a_default_trusted_estimator_of_another_kind_is_refused_by_name(tmp_path: Path) -> None:
    # skops trusts LogisticRegression by default; deploybench supports tree ensembles only.
    model = _save(_fitted("LogisticRegression"), tmp_path / "linear.skops")
    with pytest.raises(ModelError) as info:
        load_sklearn_model(model)
    message = str(info.value)
    assert "holds a LogisticRegression" in message
    assert "DecisionTreeClassifier, RandomForestClassifier, ExtraTreesClassifier" in message


def test_untrusted_types_are_refused_before_anything_is_built(tmp_path: Path) -> None:
    model = _save(NotAnEstimator(), tmp_path / "custom.skops")
    with pytest.raises(ModelError) as info:
        load_sklearn_model(model)
    message = str(info.value)
    assert "does not trust" in message and "NotAnEstimator" in message
    assert "tree-ensemble classifiers" in message and "nothing was loaded" in message


def test_a_file_that_is_no_skops_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a skops file"):
        load_sklearn_model(path)


def test_labels_other_than_zero_to_n_are_refused(tmp_path: Path) -> None:
    from sklearn.tree import DecisionTreeClassifier

    x, y = _data()
    model = _save(DecisionTreeClassifier().fit(x, y + 5), tmp_path / "shifted.skops")
    with pytest.raises(ModelError, match=r"class labels \[5, 6, 7\].*LabelEncoder"):
        load_sklearn_model(model)


def test_a_dataset_of_another_width_is_refused_with_both_widths(tmp_path: Path) -> None:
    model = _save(_fitted("RandomForestClassifier"), tmp_path / "model.skops")
    dataset = _dataset(tmp_path / "narrow.npz", features=N_FEATURES - 1)
    with pytest.raises(
        DatasetError, match=rf"size {N_FEATURES - 1} on axis 1 .* needs {N_FEATURES}"
    ):
        resolve_problem(_problem(model, dataset))


def test_digits_forest_builds_reproducibly_and_resolves(tmp_path: Path) -> None:
    first = build_model("digits-forest", tmp_path / "a")
    again = build_model("digits-forest", tmp_path / "b")
    assert first.path.name == "model.skops"
    assert again.sha256 == first.sha256
    assert again.path.read_bytes() == first.path.read_bytes()
    assert {"numpy", "sklearn", "skops"} <= set(first.manifest["tools"])
    assert first.manifest["trees"] == 8
    assert first.manifest["test_accuracy"] >= 0.9
    forest = load_sklearn_model(first.path)
    assert type(forest).__name__ == "RandomForestClassifier"
    assert forest.max_depth == 8
    assert get_model("digits-forest").format == "sklearn"
    resolved = resolve_problem(
        Problem.model_validate({"model": "zoo:digits-forest", "dataset": "zoo:digits"})
    )
    assert resolved.model_format == "sklearn"
    assert resolved.outputs[0].shape == ["N", 10]
    assert resolved.operators == ["RandomForestClassifier"]
