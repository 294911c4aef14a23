"""``digits-mlp``: a scikit-learn MLP on the digits train split, written as Gemm+Relu+Gemm."""

from __future__ import annotations

from typing import Any

import numpy as np

from deploybench.zoo.artifact import Built
from deploybench.zoo.catalog import get_model
from deploybench.zoo.datasets import digits_split
from deploybench.zoo.onnx_graph import BATCH_DIM, float_tensor, initializer, serialize_model

MLP_NAME = "digits-mlp"
HIDDEN_UNITS = 64
# With the default adam solver the MLP meets its tolerance after ~370 epochs; the cap of 1000
# leaves headroom so training ends on convergence, without a ConvergenceWarning.
MAX_ITER = 1000
SEED = 0


def train_digits_mlp() -> Any:
    """Train the MLP (``sklearn.neural_network.MLPClassifier``) on the digits train split."""
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    split = digits_split()
    classifier = MLPClassifier(
        hidden_layer_sizes=(HIDDEN_UNITS,),
        activation="relu",
        random_state=SEED,
        max_iter=MAX_ITER,
    )
    # One BLAS thread: float sums must not depend on how many cores the building machine
    # has, or the weights (and the sha256) would differ between machines.
    with threadpool_limits(limits=1):
        classifier.fit(split.x_train, split.y_train)
    return classifier


def mlp_onnx_bytes(classifier: Any) -> bytes:
    """Serialize a fitted one-hidden-layer ReLU ``MLPClassifier`` as ONNX.

    The output ``logits`` are the scores before the softmax sklearn applies in
    ``predict_proba``; their argmax is sklearn's prediction.
    """
    from onnx import helper

    w1, w2 = classifier.coefs_
    b1, b2 = classifier.intercepts_
    nodes = [
        helper.make_node("Gemm", ["input", "w1", "b1"], ["hidden_pre"], name="dense1"),
        helper.make_node("Relu", ["hidden_pre"], ["hidden"], name="relu1"),
        helper.make_node("Gemm", ["hidden", "w2", "b2"], ["logits"], name="dense2"),
    ]
    return serialize_model(
        name=MLP_NAME,
        builder_version=get_model(MLP_NAME).builder_version,
        nodes=nodes,
        inputs=[float_tensor("input", [BATCH_DIM, w1.shape[0]])],
        outputs=[float_tensor("logits", [BATCH_DIM, w2.shape[1]])],
        initializers=[
            initializer("w1", w1),
            initializer("b1", b1),
            initializer("w2", w2),
            initializer("b2", b2),
        ],
        doc="deploybench open model digits-mlp: sklearn MLPClassifier on sklearn digits.",
    )


def build_mlp() -> Built:
    """Train and export ``digits-mlp``; records the held-out accuracy in the manifest."""
    classifier = train_digits_mlp()
    split = digits_split()
    accuracy = float(np.mean(classifier.predict(split.x_test) == split.y_test))
    return Built(
        mlp_onnx_bytes(classifier),
        ("numpy", "onnx", "sklearn"),
        {"test_accuracy": accuracy, "epochs": int(classifier.n_iter_)},
    )
