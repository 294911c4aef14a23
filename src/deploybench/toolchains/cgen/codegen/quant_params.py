"""Quantization parameters: per-tensor activation scales and zero points, and the
fixed-point multipliers the int8 kernels use for requantization."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deploybench.toolchains.cgen.codegen.prepared_graph import PreparedGraph


def activation_qparams(graph: PreparedGraph, node: Any) -> tuple[float, int] | None:
    """``(scale, zero_point)`` of a Quantize/DequantizeLinear node with per-tensor constants.

    The zero point is returned in the signed domain: a uint8 tensor is stored as int8 with
    every value and its zero point shifted by -128, which leaves ``q - zero_point`` (and so all
    arithmetic) unchanged while the kernels handle one type only. None when the parameters
    are per-axis, not constant, or not 8-bit."""
    if len(node.input) < 2 or node.input[1] not in graph.consts:
        return None
    scale = np.asarray(graph.consts[node.input[1]])
    if scale.size != 1:
        return None
    zero_point = 0
    unsigned = True  # ONNX default zero-point type is uint8
    if len(node.input) > 2 and node.input[2]:
        if node.input[2] not in graph.consts:
            return None
        zp = np.asarray(graph.consts[node.input[2]])
        if zp.size != 1 or zp.dtype not in (np.uint8, np.int8):
            return None
        zero_point = int(zp.reshape(-1)[0])
        unsigned = zp.dtype == np.uint8
    return float(scale.reshape(-1)[0]), zero_point - 128 if unsigned else zero_point


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier``: ``real ~= multiplier * 2**shift / 2**31`` with the
    multiplier a Q31 value in [2**30, 2**31); shift > 0 means a left shift. Multipliers too
    small to matter become (0, 0)."""
    if real <= 0.0:
        return 0, 0
    mantissa, exponent = math.frexp(real)
    multiplier = round(mantissa * (1 << 31))
    if multiplier == 1 << 31:
        multiplier //= 2
        exponent += 1
    if exponent < -30:
        return 0, 0
    if exponent > 30:
        raise ValueError(f"requantization multiplier {real} is too large")
    return multiplier, exponent


def quantize_multipliers(reals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``quantize_multiplier`` as (int32 multipliers, int8 shifts)."""
    pairs = [quantize_multiplier(float(r)) for r in np.asarray(reals, np.float64).reshape(-1)]
    return (
        np.asarray([p[0] for p in pairs], dtype=np.int32),
        np.asarray([p[1] for p in pairs], dtype=np.int8),
    )
