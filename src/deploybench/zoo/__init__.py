"""Open problems: models and datasets that deploybench builds reproducibly, with no download.

Everything comes from data bundled with scikit-learn, is trained with fixed seeds and written
to ONNX / ``.npz`` byte for byte reproducibly, then cached (see :mod:`deploybench.zoo.build`).
Importing this package does not import torch, onnx or scikit-learn; the builders do, lazily.

Example::

    from deploybench.zoo import build_dataset, build_model

    model = build_model("digits-mlp")  # ZooArtifact(path=.../model.onnx, sha256=..., ...)
    data = build_dataset(get_model("digits-mlp").default_dataset)
"""

from deploybench.zoo.artifact import ZooArtifact
from deploybench.zoo.build import build_dataset, build_model
from deploybench.zoo.catalog import (
    ZooDataset,
    ZooModel,
    get_dataset,
    get_model,
    list_datasets,
    list_models,
)

__all__ = [
    "ZooArtifact",
    "ZooDataset",
    "ZooModel",
    "build_dataset",
    "build_model",
    "get_dataset",
    "get_model",
    "list_datasets",
    "list_models",
]
