"""ImageNet-style architectures from ``pytorchcv`` with seeded random weights, on ``digits32``.

``resnet18-wd4-digits32`` (ONNX) and ``resnet18-wd4-digits32-torch`` (state dict) are
pytorchcv's ResNet-18 at a quarter of the width (``resnet18_wd4``: 16 to 128 channels, same
18 layers and blocks) for 3x32x32 inputs and 10 classes. It is not trained: its weights are
pytorchcv's own initialization under a fixed seed, so accuracy is chance and what it is for
is semantic preservation (does a toolchain compute the same function?) on a real
architecture: a stem with max-pooling, residual blocks with projection shortcuts, global
pooling.

Why a quarter of the width: the full ResNet-18 (45 MB of weights) made the architecture
contract tests take about 100 s on two cores against about 55 s; the graph is the same.
MobileNetV2 (``pytorchcv.models.mobilenetv2:mobilenetv2_w1``) builds the same way but is not
in the catalog: with random weights OpenVINO's f32 logits differ from ONNX Runtime's by about
1.6e-4, above the documented 1e-4, so it would need tolerances of its own.

Two steps keep the random networks useful and reproducible:

- pytorchcv ends the network with a fixed 7x7 average pool (224x224 inputs); at 32x32 the
  last feature map is 1x1, so the pool is replaced by a global average pool (same function
  wherever the 7x7 pool applies).
- With freshly initialized BatchNorm (mean 0, variance 1) activations drift through the depth
  and the logits become nearly constant: one or two labels for every sample. The running
  statistics are therefore estimated on the digits32 *train* split (one pass in train mode,
  cumulative average), which spreads the predictions over all ten labels.

Everything runs seeded, on one thread with deterministic kernels, so rebuilding gives the
same weights and the same ONNX bytes. torch and pytorchcv are imported inside the functions.
"""

from __future__ import annotations

import importlib
import io
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.zoo.artifact import Built
from deploybench.zoo.catalog import get_model
from deploybench.zoo.datasets import DIGITS32_SIZE, digits32_split
from deploybench.zoo.digits_cnn import SEED, _reproducible_torch
from deploybench.zoo.onnx_graph import BATCH_DIM, float_tensor, serialize_model

NUM_CLASSES = 10
# Train-split images whose batch statistics become the BatchNorm running statistics.
BN_CALIBRATION_SAMPLES = 512
BN_CALIBRATION_BATCH = 128
_EXPORT_OPSET = 17


@dataclass(frozen=True)
class Architecture:
    """A pytorchcv network: its ONNX zoo name and its factory ``module:function``."""

    onnx_name: str
    factory: str


ARCHITECTURES: dict[str, Architecture] = {
    "resnet18-wd4": Architecture("resnet18-wd4-digits32", "pytorchcv.models.resnet:resnet18_wd4"),
}


def make_network(architecture: str) -> Any:
    """The untrained pytorchcv network (a key of :data:`ARCHITECTURES`) for 3x32x32 inputs
    and 10 classes, with global pooling.

    pytorchcv's ``get_model`` is not used: its module imports every model pytorchcv has,
    some of which need torchvision; the architecture's own module needs only torch.
    """
    from torch import nn

    module_name, function = ARCHITECTURES[architecture].factory.split(":")
    factory = getattr(importlib.import_module(module_name), function)
    network = factory(in_size=(DIGITS32_SIZE, DIGITS32_SIZE), num_classes=NUM_CLASSES)
    network.features.final_pool = nn.AdaptiveAvgPool2d(1)
    return network


def random_network(architecture: str) -> Any:
    """The seeded random network with BatchNorm statistics from the train split, in eval mode.

    Calling it twice gives bit-identical weights and statistics.
    """
    import torch
    from torch import nn

    x_train = torch.from_numpy(digits32_split().x_train[:BN_CALIBRATION_SAMPLES])
    with _reproducible_torch():
        network = make_network(architecture)
        for layer in network.modules():
            if isinstance(layer, nn.BatchNorm2d):
                layer.reset_running_stats()
                layer.momentum = None  # cumulative average over the calibration batches
        network.train()
        with torch.no_grad():
            for start in range(0, len(x_train), BN_CALIBRATION_BATCH):
                network(x_train[start : start + BN_CALIBRATION_BATCH])
        network.eval()
    return network


def network_onnx_bytes(network: Any, name: str) -> bytes:
    """Export ``network`` with torch's TorchScript-based exporter and rewrite it as a zoo graph.

    The exporter folds BatchNorm into the convolutions; its nodes and initializers are then
    reassembled by :func:`~deploybench.zoo.onnx_graph.serialize_model`, so the file carries
    the zoo's IR version, producer and metadata instead of the exporter's, and the batch
    dimension is the zoo's symbolic ``N``.
    """
    import onnx
    import torch

    example = torch.zeros(1, 3, DIGITS32_SIZE, DIGITS32_SIZE)
    with tempfile.TemporaryDirectory(prefix="deploybench-export-") as folder:
        path = Path(folder) / "exported.onnx"
        # The TorchScript-based exporter is deprecated but kept on purpose: the newer
        # torch.export one needs onnxscript, which the torch extra does not install.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                network,
                (example,),
                str(path),
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: BATCH_DIM}, "logits": {0: BATCH_DIM}},
                opset_version=_EXPORT_OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        exported = onnx.load(path)
    return serialize_model(
        name=name,
        builder_version=get_model(name).builder_version,
        nodes=list(exported.graph.node),
        inputs=[float_tensor("input", [BATCH_DIM, 3, DIGITS32_SIZE, DIGITS32_SIZE])],
        outputs=[float_tensor("logits", [BATCH_DIM, NUM_CLASSES])],
        initializers=list(exported.graph.initializer),
        doc=f"deploybench open model {name}: pytorchcv network, seeded random weights.",
    )


def _label_counts(network: Any) -> list[int]:
    """How many held-out samples get each label: evidence the logits are not degenerate."""
    import torch

    with torch.no_grad():
        logits = network(torch.from_numpy(digits32_split().x_test)).numpy()
    return [int(c) for c in np.bincount(logits.argmax(axis=1), minlength=NUM_CLASSES)]


def _tools() -> tuple[str, ...]:
    return ("numpy", "pytorchcv", "sklearn", "torch")


def build_onnx(architecture: str) -> Built:
    """The ONNX zoo model of ``architecture``; the manifest records the label counts."""
    network = random_network(architecture)
    name = ARCHITECTURES[architecture].onnx_name
    return Built(
        network_onnx_bytes(network, name),
        (*_tools(), "onnx"),
        {"label_counts": _label_counts(network), "weights": "random", "seed": SEED},
    )


def build_torch(architecture: str) -> Built:
    """The same network as a state dict (torch.save) of its ``torch_models`` class."""
    import torch

    from deploybench.zoo import torch_models

    network = random_network(architecture)
    module_class = {"resnet18-wd4": torch_models.Resnet18Wd4Digits32}[architecture]
    with _reproducible_torch():  # its throw-away initialization must not draw the caller's RNG
        module = module_class()
    module.network.load_state_dict(network.state_dict(), strict=True)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return Built(
        buffer.getvalue(),
        _tools(),
        {"label_counts": _label_counts(network), "weights": "random", "seed": SEED},
    )


def build_resnet18_wd4() -> Built:
    """``resnet18-wd4-digits32``."""
    return build_onnx("resnet18-wd4")


def build_resnet18_wd4_torch() -> Built:
    """``resnet18-wd4-digits32-torch``."""
    return build_torch("resnet18-wd4")
