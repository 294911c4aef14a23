"""``digits-cnn``: a small CNN trained with torch on the digits train split.

Training is made bit-reproducible (fixed seeds, deterministic kernels, one thread, a seeded
shuffling generator, fixed epochs) and the ONNX graph is written by hand from the trained
weights, so no torch.onnx exporter is involved and rebuilding gives the same sha256.
torch is imported inside the functions: it is optional and slow to import.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from deploybench.zoo.artifact import Built
from deploybench.zoo.catalog import get_model
from deploybench.zoo.datasets import Split, digits_split
from deploybench.zoo.onnx_graph import (
    BATCH_DIM,
    float_tensor,
    initializer,
    int64_initializer,
    serialize_model,
)

if TYPE_CHECKING:
    import onnx

CNN_NAME = "digits-cnn"
SEED = 0
# 15 epochs of Adam reach ~0.98 held-out accuracy in about 2 s on one core; more epochs
# do not help measurably.
EPOCHS = 15
BATCH_SIZE = 32
LEARNING_RATE = 1e-2
_CONV1, _CONV2, _DENSE = 1, 3, 7  # positions of the weighted layers in the Sequential


def make_digits_cnn() -> Any:
    """The untrained architecture; input (N, 64) float32, output logits (N, 10).

    A plain ``nn.Sequential`` (rather than a Module subclass) so the layer positions used by
    :func:`cnn_onnx_bytes` are fixed and visible here.
    """
    from torch import nn

    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 8, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 10),
    )


@contextlib.contextmanager
def _reproducible_torch() -> Iterator[None]:
    """Seed and pin torch for the block, then restore the caller's global torch state.

    One thread because the order of float additions in conv backward depends on the thread
    count, which would make the weights differ between machines.
    """
    import torch

    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    # fork_rng restores the global RNG afterwards, so building does not reseed the caller.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            torch.set_num_threads(threads)


def train_digits_cnn(split: Split | None = None) -> Any:
    """Train the CNN on the digits train split and return it in eval mode.

    Calling it twice gives bit-identical weights.
    """
    import torch
    from torch import nn

    split = split if split is not None else digits_split()
    with _reproducible_torch():
        model = make_digits_cnn()
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        shuffler = torch.Generator().manual_seed(SEED)
        x = torch.from_numpy(split.x_train)
        y = torch.from_numpy(split.y_train)
        model.train()
        for _ in range(EPOCHS):
            order = torch.randperm(len(x), generator=shuffler)
            for start in range(0, len(x), BATCH_SIZE):
                batch = order[start : start + BATCH_SIZE]
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
                # torch's Tensor.backward is not annotated.
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
        model.eval()
    return model


def _weights(layer: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    return layer.weight.detach().cpu().numpy(), layer.bias.detach().cpu().numpy()


def _same_conv(source: str, layer: str, output: str) -> onnx.NodeProto:
    """A 3x3 convolution with padding 1 (torch's ``padding=1``) using ``<layer>_w/_b``."""
    from onnx import helper

    return helper.make_node(
        "Conv",
        [source, f"{layer}_w", f"{layer}_b"],
        [output],
        name=layer,
        kernel_shape=[3, 3],
        pads=[1, 1, 1, 1],
    )


def cnn_onnx_bytes(model: Any) -> bytes:
    """Serialize a :func:`make_digits_cnn` model as ONNX (``input`` -> ``logits``).

    Torch's Conv2d/MaxPool2d/Flatten/Linear map one to one onto ONNX Conv/MaxPool/Flatten/
    Gemm(transB=1) with the same NCHW layout, so the weights are copied unchanged.
    """
    from onnx import helper

    conv1_w, conv1_b = _weights(model[_CONV1])
    conv2_w, conv2_b = _weights(model[_CONV2])
    dense_w, dense_b = _weights(model[_DENSE])
    nodes = [
        helper.make_node("Reshape", ["input", "image_shape"], ["image"], name="to_image"),
        _same_conv("image", "conv1", "c1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        _same_conv("r1", "conv2", "c2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node(
            "MaxPool", ["r2"], ["pooled"], name="pool", kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten", axis=1),
        helper.make_node(
            "Gemm", ["flat", "dense_w", "dense_b"], ["logits"], name="dense", transB=1
        ),
    ]
    return serialize_model(
        name=CNN_NAME,
        builder_version=get_model(CNN_NAME).builder_version,
        nodes=nodes,
        inputs=[float_tensor("input", [BATCH_DIM, 64])],
        outputs=[float_tensor("logits", [BATCH_DIM, dense_w.shape[0]])],
        initializers=[
            # -1 keeps the batch dimension symbolic.
            int64_initializer("image_shape", [-1, 1, 8, 8]),
            initializer("conv1_w", conv1_w),
            initializer("conv1_b", conv1_b),
            initializer("conv2_w", conv2_w),
            initializer("conv2_b", conv2_b),
            initializer("dense_w", dense_w),
            initializer("dense_b", dense_b),
        ],
        doc="deploybench open model digits-cnn: small torch CNN on sklearn digits.",
    )


def build_cnn() -> Built:
    """Train and export ``digits-cnn``; records the held-out accuracy in the manifest."""
    import torch

    split = digits_split()
    model = train_digits_cnn(split)
    with torch.no_grad():
        logits = model(torch.from_numpy(split.x_test)).numpy()
    accuracy = float(np.mean(logits.argmax(axis=1) == split.y_test))
    return Built(
        cnn_onnx_bytes(model),
        ("numpy", "onnx", "sklearn", "torch"),
        {"test_accuracy": accuracy, "epochs": EPOCHS},
    )


def build_cnn_torch() -> Built:
    """``digits-cnn-torch``: the same trained CNN saved as a state dict (torch.save)."""
    import io

    import torch

    from deploybench.zoo.torch_models import DigitsCnn

    split = digits_split()
    trained = train_digits_cnn(split)
    model = DigitsCnn()
    model.load_state_dict(trained.state_dict())
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(split.x_test)).numpy()
    accuracy = float(np.mean(logits.argmax(axis=1) == split.y_test))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return Built(
        buffer.getvalue(),
        ("numpy", "sklearn", "torch"),
        {"test_accuracy": accuracy, "epochs": EPOCHS},
    )
