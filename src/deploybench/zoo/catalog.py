"""What the zoo offers: metadata of the open models and datasets, no building code.

This module is cheap to import (no numpy, sklearn, torch or onnx) so the CLI and the spec
validation can list and check ``zoo:`` names without paying for the builders.
"""

from __future__ import annotations

from dataclasses import dataclass

from deploybench.errors import DatasetError, ModelError
from deploybench.spec.problem import TaskKind


@dataclass(frozen=True)
class ZooDataset:
    """An open dataset built by deploybench from data bundled with scikit-learn.

    ``builder_version`` is part of the cache key: bump it whenever the bytes the builder
    produces change, so stale caches are never reused.
    """

    name: str
    task: TaskKind
    description: str
    builder_version: int
    requires: tuple[str, ...] = ("sklearn",)


@dataclass(frozen=True)
class ZooModel:
    """An open model trained and exported (to ONNX unless ``format`` says otherwise) by
    deploybench.

    ``requires`` names the Python modules needed to *build* it (running the built ONNX
    file needs none of them). ``builder_version`` is part of the cache key, as for datasets.
    """

    name: str
    task: TaskKind
    description: str
    default_dataset: str
    requires: tuple[str, ...]
    builder_version: int
    # "torch" models are a state dict of ``torch_module`` ('package.module:Class'), fed by
    # one float32 input 'input' with the shape below; outputs named by ``torch_outputs``.
    format: str = "onnx"
    torch_module: str | None = None
    torch_input_shape: tuple[int | str, ...] = ()
    torch_outputs: tuple[str, ...] = ()
    # "sklearn" models are a fitted estimator saved with skops.io (model.skops).


_DATASETS: tuple[ZooDataset, ...] = (
    ZooDataset(
        name="digits",
        task=TaskKind.CLASSIFICATION,
        description=(
            "Held-out 20% of scikit-learn's 8x8 handwritten digits (360 samples): "
            "'input' float32 (N, 64) pixels scaled to [0, 1], 'labels' int64 (N,)."
        ),
        builder_version=1,
    ),
    ZooDataset(
        name="digits32",
        task=TaskKind.CLASSIFICATION,
        description=(
            "The digits held-out samples as images for ImageNet-style networks (360 samples): "
            "'input' float32 (N, 3, 32, 32), each pixel a 4x4 block in [0, 1] copied to three "
            "channels, 'labels' int64 (N,)."
        ),
        builder_version=1,
    ),
    ZooDataset(
        name="diabetes",
        task=TaskKind.REGRESSION,
        description=(
            "Held-out 20% of scikit-learn's diabetes data (89 samples): "
            "'input' float32 (N, 10) standardized features, 'targets' float32 (N,)."
        ),
        builder_version=1,
    ),
)


def _pytorchcv_models(name: str, title: str, torch_class: str) -> tuple[ZooModel, ZooModel]:
    """The ONNX and the state-dict entry of one pytorchcv architecture on digits32."""
    what = (
        f"{title} from pytorchcv for 3x32x32 inputs and 10 classes, global average pool, "
        "seeded random weights with BatchNorm statistics of the digits32 train split "
        "(accuracy is chance: use it for semantic preservation)"
    )
    return (
        ZooModel(
            name=name,
            task=TaskKind.CLASSIFICATION,
            description=f"{what}; input 'input' float32 (N, 3, 32, 32), output 'logits' "
            "float32 (N, 10).",
            default_dataset="digits32",
            requires=("sklearn", "torch", "onnx", "pytorchcv"),
            builder_version=1,
        ),
        ZooModel(
            name=f"{name}-torch",
            task=TaskKind.CLASSIFICATION,
            description=f"{name} as a PyTorch state dict (same weights) of "
            f"deploybench.zoo.torch_models:{torch_class}.",
            default_dataset="digits32",
            requires=("sklearn", "torch", "pytorchcv"),
            builder_version=1,
            format="torch",
            torch_module=f"deploybench.zoo.torch_models:{torch_class}",
            torch_input_shape=("N", 3, 32, 32),
            torch_outputs=("logits",),
        ),
    )


_MODELS: tuple[ZooModel, ...] = (
    ZooModel(
        name="digits-cnn",
        task=TaskKind.CLASSIFICATION,
        description=(
            "Small CNN (2 conv + max-pool + linear) trained with torch on the digits train "
            "split; input 'input' float32 (N, 64), output 'logits' float32 (N, 10)."
        ),
        default_dataset="digits",
        requires=("sklearn", "torch", "onnx"),
        builder_version=1,
    ),
    ZooModel(
        name="digits-cnn-torch",
        task=TaskKind.CLASSIFICATION,
        description=(
            "digits-cnn as a PyTorch state dict (same training, same weights) of "
            "deploybench.zoo.torch_models:DigitsCnn; input 'input' float32 (N, 64), "
            "output 'logits' float32 (N, 10)."
        ),
        default_dataset="digits",
        requires=("sklearn", "torch"),
        builder_version=1,
        format="torch",
        torch_module="deploybench.zoo.torch_models:DigitsCnn",
        torch_input_shape=("N", 64),
        torch_outputs=("logits",),
    ),
    ZooModel(
        name="digits-mlp",
        task=TaskKind.CLASSIFICATION,
        description=(
            "scikit-learn MLP (64 ReLU hidden units) trained on the digits train split; "
            "input 'input' float32 (N, 64), output 'logits' float32 (N, 10)."
        ),
        default_dataset="digits",
        requires=("sklearn", "onnx"),
        builder_version=1,
    ),
    ZooModel(
        name="digits-forest",
        task=TaskKind.CLASSIFICATION,
        description=(
            "scikit-learn random forest (8 trees, depth at most 8) trained on the digits "
            "train split, saved with skops; input 'input' float32 (N, 64), output "
            "'probabilities' float32 (N, 10) (predict_proba)."
        ),
        default_dataset="digits",
        requires=("sklearn", "skops"),
        builder_version=1,
        format="sklearn",
    ),
    ZooModel(
        name="diabetes-linear",
        task=TaskKind.REGRESSION,
        description=(
            "scikit-learn linear regression on the diabetes train split; "
            "input 'input' float32 (N, 10), output 'prediction' float32 (N, 1)."
        ),
        default_dataset="diabetes",
        requires=("sklearn", "onnx"),
        builder_version=1,
    ),
    *_pytorchcv_models(
        "resnet18-wd4-digits32", "ResNet-18 at 1/4 width (resnet18_wd4)", "Resnet18Wd4Digits32"
    ),
)


def list_models() -> list[ZooModel]:
    """All open models, in a stable order."""
    return list(_MODELS)


def list_datasets() -> list[ZooDataset]:
    """All open datasets, in a stable order."""
    return list(_DATASETS)


def get_model(name: str) -> ZooModel:
    """The open model called ``name``.

    Raises:
        ModelError: no such model; the message lists the known names.
    """
    for model in _MODELS:
        if model.name == name:
            return model
    known = ", ".join(m.name for m in _MODELS)
    raise ModelError(f"unknown open model {name!r}; known: {known}")


def get_dataset(name: str) -> ZooDataset:
    """The open dataset called ``name``.

    Raises:
        DatasetError: no such dataset; the message lists the known names.
    """
    for dataset in _DATASETS:
        if dataset.name == name:
            return dataset
    known = ", ".join(d.name for d in _DATASETS)
    raise DatasetError(f"unknown open dataset {name!r}; known: {known}")
