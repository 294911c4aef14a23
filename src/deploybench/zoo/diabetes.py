"""``diabetes-linear``: scikit-learn linear regression on the diabetes train split."""

from __future__ import annotations

from typing import Any

import numpy as np

from deploybench.zoo.artifact import Built
from deploybench.zoo.catalog import get_model
from deploybench.zoo.datasets import diabetes_split
from deploybench.zoo.onnx_graph import BATCH_DIM, float_tensor, initializer, serialize_model

LINEAR_NAME = "diabetes-linear"


def train_diabetes_linear() -> Any:
    """Fit ``sklearn.linear_model.LinearRegression`` on the diabetes train split."""
    from sklearn.linear_model import LinearRegression

    split = diabetes_split()
    # Solve in float64 (the float32 inputs are exactly representable) for a stable least
    # squares solution; the weights are rounded to float32 only when exported.
    return LinearRegression().fit(
        split.x_train.astype(np.float64), split.y_train.astype(np.float64)
    )


def linear_onnx_bytes(regressor: Any) -> bytes:
    """Serialize a fitted single-target ``LinearRegression`` as MatMul+Add -> ``prediction``."""
    from onnx import helper

    coef = np.asarray(regressor.coef_, dtype=np.float64).reshape(-1, 1)
    bias = np.asarray([regressor.intercept_], dtype=np.float64)
    nodes = [
        helper.make_node("MatMul", ["input", "weight"], ["scaled"], name="matmul"),
        helper.make_node("Add", ["scaled", "bias"], ["prediction"], name="add_bias"),
    ]
    return serialize_model(
        name=LINEAR_NAME,
        builder_version=get_model(LINEAR_NAME).builder_version,
        nodes=nodes,
        inputs=[float_tensor("input", [BATCH_DIM, coef.shape[0]])],
        outputs=[float_tensor("prediction", [BATCH_DIM, 1])],
        initializers=[initializer("weight", coef), initializer("bias", bias)],
        doc="deploybench open model diabetes-linear: sklearn LinearRegression on diabetes.",
    )


def build_linear() -> Built:
    """Fit and export ``diabetes-linear``; records the held-out R² in the manifest."""
    regressor = train_diabetes_linear()
    split = diabetes_split()
    r2 = float(regressor.score(split.x_test.astype(np.float64), split.y_test))
    return Built(linear_onnx_bytes(regressor), ("numpy", "onnx", "sklearn"), {"test_r2": r2})
