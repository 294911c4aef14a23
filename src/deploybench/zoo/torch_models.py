"""PyTorch module classes of the zoo's torch models (imports torch: load it on demand only).

``zoo:digits-cnn-torch`` is the state dict of :class:`DigitsCnn`, referenced by problems as
``<this file>:DigitsCnn``; ``zoo:resnet18-wd4-digits32-torch`` is the state dict of
:class:`Resnet18Wd4Digits32`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from deploybench.zoo.digits_cnn import make_digits_cnn


class DigitsCnn(nn.Sequential):
    """The digits CNN of :func:`deploybench.zoo.digits_cnn.make_digits_cnn`: input (N, 64)
    float32, output logits (N, 10); same layers, so the same state dict keys."""

    def __init__(self) -> None:
        super().__init__(*make_digits_cnn())


class Resnet18Wd4Digits32(nn.Module):
    """pytorchcv's ResNet-18 at 1/4 width, built by
    :func:`deploybench.zoo.pytorchcv_nets.make_network` and held as ``network``: input
    (N, 3, 32, 32) float32, output logits (N, 10)."""

    def __init__(self) -> None:
        super().__init__()
        # Imported here: this file is loaded for every zoo torch model, and the digits CNN
        # needs no pytorchcv.
        from deploybench.zoo.pytorchcv_nets import make_network

        self.network = make_network("resnet18-wd4")

    def forward(self, x: Any) -> Any:
        """pytorchcv's own forward."""
        return self.network(x)
