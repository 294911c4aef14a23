"""scikit-learn models saved with ``skops.io.dump`` (``.skops``), loaded without pickle.

A ``.skops`` file is a zip of a JSON schema plus ``.npy`` arrays; ``skops.io.load`` only
builds the types it is told to trust. deploybench trusts the tree-ensemble classifiers it
supports and the one internal type they hold (``sklearn.tree._tree.Tree``): a file that
asks for anything else is refused before anything is built, and a file whose top object is
another (default-trusted) estimator is refused after. Shared by problem resolution, the
``sklearn`` toolchain's session and the tree-to-C generator. skops and scikit-learn are
imported inside the functions.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.errors import ModelError
from deploybench.problems.model_files import ModelInfo, check_model_file
from deploybench.problems.tensors import TensorSpec

__all__ = [
    "SUPPORTED_ESTIMATORS",
    "TRUSTED_TYPES",
    "inspect_sklearn",
    "load_sklearn_model",
]

# Fully qualified names, as skops reports them (module of definition + class name).
SUPPORTED_ESTIMATORS = (
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
)
TRUSTED_TYPES = (*SUPPORTED_ESTIMATORS, "sklearn.tree._tree.Tree")
_FIX = (
    "save a fitted DecisionTreeClassifier, RandomForestClassifier or ExtraTreesClassifier "
    "with skops.io.dump(model, path)"
)


def _short(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(name.rpartition(".")[2] for name in names)


def load_sklearn_model(path: Path) -> Any:
    """Load a supported tree-ensemble classifier from a ``.skops`` file, safely.

    Raises:
        ModelError: not a skops file, untrusted types inside (named in the message), an
            unsupported or unfitted estimator, several outputs, or class labels other than
            ``0..n_classes-1``.
    """
    import skops.io as sio

    check_model_file(path)
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path} is not a skops file (not a zip archive); {_FIX}")
    try:
        found = sio.get_untrusted_types(file=path)
    except Exception as exc:  # KeyError, JSONDecodeError, ValueError on a malformed schema
        raise ModelError(
            f"{path} is not a readable skops file ({type(exc).__name__}: {exc}); {_FIX}"
        ) from None
    untrusted = sorted(set(found) - set(TRUSTED_TYPES))
    if untrusted:
        raise ModelError(
            f"{path} holds types deploybench does not trust: {', '.join(untrusted)}; "
            f"supported models are tree-ensemble classifiers ({_short(SUPPORTED_ESTIMATORS)}), "
            "so nothing was loaded"
        )
    try:
        model = sio.load(path, trusted=list(TRUSTED_TYPES))
    except Exception as exc:
        raise ModelError(
            f"loading {path} with skops failed ({type(exc).__name__}: {exc}); {_FIX}"
        ) from None
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    if kind not in SUPPORTED_ESTIMATORS:
        raise ModelError(
            f"{path} holds a {type(model).__name__} ({kind}); supported scikit-learn models "
            f"are {_short(SUPPORTED_ESTIMATORS)}; export other models to ONNX"
        )
    _check_fitted(path, model)
    return model


def _check_fitted(path: Path, model: Any) -> None:
    name = type(model).__name__
    if not hasattr(model, "classes_") or not hasattr(model, "n_features_in_"):
        raise ModelError(f"{path} holds an unfitted {name}; fit it before saving it")
    if int(getattr(model, "n_outputs_", 1)) != 1:
        raise ModelError(
            f"{path} holds a multi-output {name} ({model.n_outputs_} outputs); "
            "only single-output classifiers are supported"
        )
    classes = np.asarray(model.classes_)
    # Outputs are read by column: column i must be label i for accuracy and label agreement.
    if classes.dtype.kind not in "iu" or not np.array_equal(classes, np.arange(len(classes))):
        shown = ", ".join(str(c) for c in classes[:5]) + (", ..." if len(classes) > 5 else "")
        raise ModelError(
            f"{path}: {name} was trained with class labels [{shown}]; deploybench reads the "
            f"probability column i as label i, so train it with labels 0..{len(classes) - 1} "
            "(sklearn.preprocessing.LabelEncoder) and use the encoded labels in the dataset"
        )


def inspect_sklearn(path: Path) -> ModelInfo:
    """Load (safely) and describe a ``.skops`` tree ensemble: one float32 input ``input``
    ``[N, n_features_in_]``, one output ``probabilities`` ``[N, n_classes]``."""
    model = load_sklearn_model(path)
    return ModelInfo(
        format="sklearn",
        inputs=[TensorSpec(name="input", dtype="float32", shape=["N", int(model.n_features_in_)])],
        outputs=[
            TensorSpec(name="probabilities", dtype="float32", shape=["N", len(model.classes_)])
        ],
        opset=None,
        operators=[type(model).__name__],
    )
