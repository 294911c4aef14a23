"""Recognise DequantizeLinear -> op [-> Relu/Clip] -> QuantizeLinear groups of a QDQ model and
lower each to one integer kernel (int8 activations, int32 accumulation, Q31 requantization).

Integer kernels: Conv (incl. groups/depthwise), Gemm (transB; alpha = beta = 1), MatMul (2-D
constant weight), same-shape Add, MaxPool (unchanged scale), AveragePool, GlobalAveragePool,
Relu/Clip (fused into the requantization clamp, or alone as a rescale) and the shape-only
operators (an alias, or a rescale when the scales differ). Weights must be int8 with zero
point 0, per-tensor or per output channel.

Anything else falls back to float: its DequantizeLinear inputs and QuantizeLinear output
become conversion kernels around the fp32 kernel (see ``lower_fp32``). Typical fallbacks are
Softmax, Sigmoid, Tanh, Mul/Sub/Div, broadcasting Add, unfolded BatchNormalization, and any
op whose output has several consumers or is not followed by a QuantizeLinear."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from deploybench.toolchains.cgen.codegen.geometry import window_2d
from deploybench.toolchains.cgen.codegen.lower_fp32 import clip_bounds
from deploybench.toolchains.cgen.codegen.operators import ALIAS_OPERATORS
from deploybench.toolchains.cgen.codegen.prepared_graph import (
    PreparedGraph,
    QuantizedConst,
    attributes,
    node_label,
)
from deploybench.toolchains.cgen.codegen.program import INT8, Program, Step
from deploybench.toolchains.cgen.codegen.quant_params import (
    activation_qparams,
    quantize_multiplier,
    quantize_multipliers,
)

# Operators with an integer kernel; the value is the name reported in GeneratedModel.operators.
INT8_OPERATOR_NAMES: dict[str, str] = {
    "Conv": "QLinearConv",
    "Gemm": "QGemm",
    "MatMul": "QLinearMatMul",
    "Add": "QLinearAdd",
    "MaxPool": "QLinearMaxPool",
    "AveragePool": "QLinearAveragePool",
    "GlobalAveragePool": "QLinearGlobalAveragePool",
    "Relu": "QLinearRelu",
    "Clip": "QLinearClip",
}
_FUSABLE_ACTIVATIONS = ("Relu", "Clip")
_WITH_FUSED_ACTIVATION = ("Conv", "Gemm", "MatMul", "Add")


@dataclass(frozen=True)
class QuantTensor:
    """An int8 buffer with the scale and (signed-domain) zero point it represents."""

    name: str
    scale: float
    zero_point: int


@dataclass(frozen=True)
class Int8Group:
    """A matched DequantizeLinear -> op [-> activation] -> QuantizeLinear group."""

    node: Any
    activation: Any | None
    quantize: Any
    inputs: tuple[QuantTensor, ...]
    output: QuantTensor
    lo: int
    hi: int


def match_int8_group(graph: PreparedGraph, node: Any) -> Int8Group | None:
    """The group anchored at ``node``, or None when ``node`` must run in float."""
    op = node.op_type
    if op not in INT8_OPERATOR_NAMES and op not in ALIAS_OPERATORS:
        return None
    activation_inputs = list(node.input[:2]) if op == "Add" else [node.input[0]]
    inputs: list[QuantTensor] = []
    for name in activation_inputs:
        quant = _dequantized_from(graph, name)
        if quant is None:
            return None
        inputs.append(quant)
    tensor = node.output[0]
    activation = None
    consumers = graph.consumers(tensor)
    if (
        op in _WITH_FUSED_ACTIVATION
        and len(consumers) == 1
        and consumers[0].op_type in _FUSABLE_ACTIVATIONS
        and tensor != graph.output_name
        and all(name == "" or name in graph.consts for name in consumers[0].input[1:])
    ):
        activation = consumers[0]
        tensor = activation.output[0]
        consumers = graph.consumers(tensor)
    if len(consumers) != 1 or consumers[0].op_type != "QuantizeLinear":
        return None
    if tensor == graph.output_name:
        return None
    quantize = consumers[0]
    params = activation_qparams(graph, quantize)
    if params is None:
        return None
    output = QuantTensor(quantize.output[0], *params)
    lo, hi = -128, 127
    bounded = activation if activation is not None else node
    if bounded.op_type in _FUSABLE_ACTIVATIONS:
        low, high = clip_bounds(graph, bounded)
        lo = max(lo, _quantize_value(low, output))
        hi = min(hi, _quantize_value(high, output))
    return Int8Group(node, activation, quantize, tuple(inputs), output, lo, hi)


def lower_int8_group(program: Program, graph: PreparedGraph, group: Int8Group) -> bool:
    """Append the integer kernel for ``group``; False (and nothing appended) when an attribute
    or parameter falls outside what the int8 kernels handle."""
    op = group.node.op_type
    if op in ("Conv", "Gemm", "MatMul"):
        step = _weighted_step(program, graph, group)
    elif op == "Add":
        step = _add_step(graph, group)
    elif op in ("MaxPool", "AveragePool", "GlobalAveragePool"):
        step = _pool_step(graph, group)
    else:  # Relu, Clip and the shape-only operators: a rescale (or nothing)
        step = _requant_step(graph, group)
    if step is None:
        return False
    program.buffer(step.output, graph.shapes[group.quantize.output[0]], INT8)
    program.steps.append(step)
    return True


def _dequantized_from(graph: PreparedGraph, tensor: str) -> QuantTensor | None:
    producer = graph.producer(tensor)
    if producer is None or producer.op_type != "DequantizeLinear":
        return None
    if producer.input[0] in graph.consts:
        return None
    params = activation_qparams(graph, producer)
    return None if params is None else QuantTensor(producer.input[0], *params)


def _quantize_value(value: float, tensor: QuantTensor) -> int:
    q = round(value / tensor.scale) + tensor.zero_point if abs(value) < 1e30 else value
    return int(max(-128, min(127, q)))


def _weighted_step(program: Program, graph: PreparedGraph, group: Int8Group) -> Step | None:
    node, (x,), y = group.node, group.inputs, group.output
    weight = graph.quantized_consts.get(node.input[1])
    if weight is None or weight.values.dtype != np.int8 or np.any(weight.zero_point != 0):
        return None
    attrs = attributes(node)
    values = weight.values.astype(np.int64)
    if node.op_type == "Conv":
        out_axis = 0
        matrix = values
    elif node.op_type == "Gemm":
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1:
            return None
        trans_b = int(attrs.get("transB", 0))
        out_axis = 0 if trans_b else 1
        matrix = values if trans_b else values.T
    else:
        if values.ndim != 2:
            return None
        out_axis = 1
        matrix = values.T
    channels = matrix.shape[0]
    w_scale = _channel_scales(weight, out_axis, channels)
    if w_scale is None:
        return None
    acc_scale = x.scale * w_scale
    bias_id = "NULL"
    label = node_label(node)
    if len(node.input) > 2 and node.input[2]:
        bias = np.asarray(graph.consts[node.input[2]], np.float64).reshape(-1)
        if bias.size not in (1, channels):
            return None
        bias_q = np.round(np.broadcast_to(bias, (channels,)) / acc_scale)
        bias_id = program.const(f"{label}_bias", bias_q, "int32_t")
    mult, shift = quantize_multipliers(acc_scale / y.scale)
    w_id = program.const(f"{label}_w", matrix, INT8)
    m_id = program.const(f"{label}_mult", mult, "int32_t")
    s_id = program.const(f"{label}_shift", shift, INT8)
    tail = f"{x.zero_point}, {m_id}, {s_id}, {y.zero_point}, {group.lo}, {group.hi});"
    name = INT8_OPERATOR_NAMES[node.op_type]
    if node.op_type == "Conv":
        win = window_2d(
            attrs, graph.shapes[node.input[0]], graph.shapes[node.output[0]], values.shape[2:4]
        )
        call = (
            f"conv2d_s8({{in0}}, {w_id}, {bias_id}, {{out}}, {win.channels}, {win.height}, "
            f"{win.width}, {channels}, {win.out_height}, {win.out_width}, {win.kernel_h}, "
            f"{win.kernel_w}, {win.stride_h}, {win.stride_w}, {win.pad_top}, {win.pad_left}, "
            f"{int(attrs.get('group', 1))}, {tail}"
        )
        return Step(name, (x.name,), y.name, "conv2d_s8", call)
    in_shape = graph.shapes[node.input[0]]
    k = matrix.shape[1]
    rows = math.prod(in_shape) // k
    call = f"dense_s8({{in0}}, {w_id}, {bias_id}, {{out}}, {rows}, {k}, {channels}, {tail}"
    return Step(name, (x.name,), y.name, "dense_s8", call)


def _channel_scales(weight: QuantizedConst, axis: int, channels: int) -> np.ndarray | None:
    scale = np.asarray(weight.scale, np.float64).reshape(-1)
    if scale.size == 1:
        return np.full(channels, scale[0])
    if scale.size != channels or weight.axis != axis:
        return None
    return scale


def _add_step(graph: PreparedGraph, group: Int8Group) -> Step | None:
    a, b = group.inputs
    y = group.output
    out_shape = graph.shapes[group.node.output[0]]
    if any(graph.shapes[n] != out_shape for n in group.node.input[:2]):
        return None  # broadcasting adds run in float
    twice_max = 2.0 * max(a.scale, b.scale)
    ma, sa = quantize_multiplier(a.scale / twice_max)
    mb, sb = quantize_multiplier(b.scale / twice_max)
    my, sy = quantize_multiplier(twice_max / ((1 << 20) * y.scale))
    call = (
        f"add_s8({{in0}}, {{in1}}, {{out}}, {math.prod(out_shape)}, {a.zero_point}, {ma}, {sa}, "
        f"{b.zero_point}, {mb}, {sb}, {y.zero_point}, {my}, {sy}, {group.lo}, {group.hi});"
    )
    return Step("QLinearAdd", (a.name, b.name), y.name, "add_s8", call, in_place=True)


def _pool_step(graph: PreparedGraph, group: Int8Group) -> Step | None:
    node, (x,), y = group.node, group.inputs, group.output
    in_shape = graph.shapes[node.input[0]]
    name = INT8_OPERATOR_NAMES[node.op_type]
    if node.op_type == "GlobalAveragePool":
        hw = math.prod(in_shape[2:])
        mult, shift = quantize_multiplier(x.scale / (y.scale * hw))
        call = (
            f"global_avgpool_s8({{in0}}, {{out}}, {in_shape[1]}, {hw}, {x.zero_point}, {mult}, "
            f"{shift}, {y.zero_point});"
        )
        return Step(name, (x.name,), y.name, "global_avgpool_s8", call)
    is_max = node.op_type == "MaxPool"
    if is_max and (x.scale, x.zero_point) != (y.scale, y.zero_point):
        return None
    attrs = attributes(node)
    kernel = tuple(attrs["kernel_shape"])
    win = window_2d(attrs, in_shape, graph.shapes[node.output[0]], (kernel[0], kernel[1]))
    mult, shift = quantize_multiplier(x.scale / y.scale)
    call = (
        f"pool2d_s8({{in0}}, {{out}}, {win.channels}, {win.c_args()}, {int(is_max)}, "
        f"{int(attrs.get('count_include_pad', 0))}, {x.zero_point}, {mult}, {shift}, "
        f"{y.zero_point});"
    )
    return Step(name, (x.name,), y.name, "pool2d_s8", call)


def _requant_step(graph: PreparedGraph, group: Int8Group) -> Step | None:
    node, (x,), y = group.node, group.inputs, group.output
    same = (x.scale, x.zero_point) == (y.scale, y.zero_point)
    if node.op_type in ALIAS_OPERATORS and same:
        return Step(node.op_type, (x.name,), y.name, alias=True)
    mult, shift = quantize_multiplier(x.scale / y.scale)
    n = math.prod(graph.shapes[node.output[0]])
    call = (
        f"requant_s8({{in0}}, {{out}}, {n}, {x.zero_point}, {mult}, {shift}, {y.zero_point}, "
        f"{group.lo}, {group.hi});"
    )
    name = INT8_OPERATOR_NAMES.get(node.op_type, node.op_type)
    return Step(name, (x.name,), y.name, "requant_s8", call, in_place=True)
