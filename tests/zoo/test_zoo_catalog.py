"""The zoo catalog: names, lookups, errors, and a cheap import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deploybench.errors import DatasetError, ModelError, UserError
from deploybench.spec.problem import TaskKind
from deploybench.zoo import (
    ZooDataset,
    ZooModel,
    build_model,
    get_dataset,
    get_model,
    list_datasets,
    list_models,
)
from deploybench.zoo.build import DATASET_BUILDERS, MODEL_BUILDERS


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYBENCH_HOME", str(tmp_path / "home"))


def test_lists_the_open_models_and_datasets() -> None:
    assert [m.name for m in list_models()] == [
        "digits-cnn",
        "digits-cnn-torch",
        "digits-mlp",
        "digits-forest",
        "diabetes-linear",
        "resnet18-wd4-digits32",
        "resnet18-wd4-digits32-torch",
    ]
    assert [d.name for d in list_datasets()] == ["digits", "digits32", "diabetes"]


def test_get_model_returns_its_metadata() -> None:
    model = get_model("digits-cnn")
    assert isinstance(model, ZooModel)
    assert model.task is TaskKind.CLASSIFICATION
    assert model.default_dataset == "digits"
    assert "torch" in model.requires
    assert model.builder_version >= 1
    assert get_model("diabetes-linear").task is TaskKind.REGRESSION
    assert get_model("diabetes-linear").default_dataset == "diabetes"


def test_get_dataset_returns_its_metadata() -> None:
    dataset = get_dataset("digits")
    assert isinstance(dataset, ZooDataset)
    assert dataset.task is TaskKind.CLASSIFICATION
    assert get_dataset("diabetes").task is TaskKind.REGRESSION


def test_every_model_default_dataset_exists_with_the_same_task() -> None:
    for model in list_models():
        assert get_dataset(model.default_dataset).task is model.task


def test_catalog_entries_are_frozen() -> None:
    with pytest.raises(AttributeError):
        get_model("digits-mlp").name = "other"  # type: ignore[misc]


def test_unknown_model_is_a_user_error_listing_known_names() -> None:
    with pytest.raises(ModelError) as info:
        get_model("x")
    assert isinstance(info.value, UserError)
    assert (
        str(info.value) == "unknown open model 'x'; known: "
        "digits-cnn, digits-cnn-torch, digits-mlp, digits-forest, diabetes-linear, "
        "resnet18-wd4-digits32, "
        "resnet18-wd4-digits32-torch"
    )


def test_unknown_dataset_is_a_user_error_listing_known_names() -> None:
    with pytest.raises(DatasetError) as info:
        get_dataset("mnist")
    assert isinstance(info.value, UserError)
    assert str(info.value) == ("unknown open dataset 'mnist'; known: digits, digits32, diabetes")


def test_build_of_unknown_model_raises_before_building(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="known: digits-cnn"):
        build_model("resnet50", tmp_path)
    assert not (tmp_path / "models").exists()


def test_every_catalog_entry_has_a_builder() -> None:
    assert set(MODEL_BUILDERS) == {m.name for m in list_models()}
    assert set(DATASET_BUILDERS) == {d.name for d in list_datasets()}


def test_missing_build_dependency_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("deploybench.zoo.build._module_available", lambda module: module != "torch")
    with pytest.raises(
        ModelError, match=r"needs the Python module\(s\) torch.*deploybench\[torch\]"
    ):
        build_model("digits-cnn", tmp_path)


def test_importing_the_zoo_does_not_import_heavy_frameworks() -> None:
    code = (
        "import sys, deploybench.zoo\n"
        "heavy = [m for m in ('torch', 'onnx', 'sklearn', 'onnxruntime') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
