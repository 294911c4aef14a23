"""PyTorch module classes of the zoo's torch models (imports torch: load it on demand only).

``zoo:digits-cnn-torch`` is the state dict of :class:`DigitsCnn`, referenced by problems as
``<this file>:DigitsCnn``.
"""

from __future__ import annotations

from torch import nn

from deploybench.zoo.digits_cnn import make_digits_cnn


class DigitsCnn(nn.Sequential):
    """The digits CNN of :func:`deploybench.zoo.digits_cnn.make_digits_cnn`: input (N, 64)
    float32, output logits (N, 10); same layers, so the same state dict keys."""

    def __init__(self) -> None:
        super().__init__(*make_digits_cnn())
