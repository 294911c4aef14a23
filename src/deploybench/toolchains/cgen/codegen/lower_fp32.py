"""Lower single ONNX nodes to fp32 kernel calls (and the Quantize/DequantizeLinear boundary
kernels an int8 model needs around operators that run in float)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deploybench.toolchains.cgen.codegen.geometry import FLOAT_MAX, window_2d
from deploybench.toolchains.cgen.codegen.operators import ALIAS_OPERATORS
from deploybench.toolchains.cgen.codegen.prepared_graph import (
    PreparedGraph,
    attributes,
    node_label,
)
from deploybench.toolchains.cgen.codegen.program import FLOAT, INT8, Program, Step, c_float
from deploybench.toolchains.cgen.codegen.quant_params import activation_qparams

_BINARY_CODES = {"Add": 0, "Mul": 1, "Sub": 2, "Div": 3}
_UNARY_CODES = {"Relu": 0, "Clip": 0, "Sigmoid": 1, "Tanh": 2}


def clip_bounds(graph: PreparedGraph, node: Any) -> tuple[float, float]:
    """The [lo, hi] range of a Relu or Clip node (inputs since opset 11, attributes before)."""
    if node.op_type == "Relu":
        return 0.0, FLOAT_MAX
    attrs = attributes(node)
    lo = float(attrs.get("min", -FLOAT_MAX))
    hi = float(attrs.get("max", FLOAT_MAX))
    if len(node.input) > 1 and node.input[1]:
        lo = float(np.asarray(graph.consts[node.input[1]]).reshape(-1)[0])
    if len(node.input) > 2 and node.input[2]:
        hi = float(np.asarray(graph.consts[node.input[2]]).reshape(-1)[0])
    return lo, hi


def lower_fp32_node(
    program: Program,
    graph: PreparedGraph,
    node: Any,
    output: str,
    bounds: tuple[float, float] = (-FLOAT_MAX, FLOAT_MAX),
) -> None:
    """Append the step(s) computing ``node`` in float; ``output`` may be a fused activation's
    output and ``bounds`` its clamp."""
    op = node.op_type
    shape = graph.shapes[output]
    label = node_label(node)
    lo, hi = c_float(bounds[0]), c_float(bounds[1])
    if op in ALIAS_OPERATORS:
        program.buffer(output, shape, program.buffers[node.input[0]].ctype)
        program.steps.append(Step(op, (node.input[0],), output, alias=True))
        return
    if op == "QuantizeLinear":
        scale, zero = _qparams(graph, node)
        program.buffer(output, shape, INT8)
        call = f"quantize_f32({{in0}}, {{out}}, {math.prod(shape)}, {c_float(scale)}, {zero});"
        program.steps.append(Step(op, (node.input[0],), output, "quantize_f32", call))
        return
    if op == "DequantizeLinear":
        scale, zero = _qparams(graph, node)
        program.buffer(output, shape, FLOAT)
        call = f"dequantize_f32({{in0}}, {{out}}, {math.prod(shape)}, {c_float(scale)}, {zero});"
        program.steps.append(Step(op, (node.input[0],), output, "dequantize_f32", call))
        return
    program.buffer(output, shape, FLOAT)
    x = node.input[0]
    if op == "Conv":
        weight = np.asarray(graph.consts[node.input[1]], dtype=np.float32)
        attrs = attributes(node)
        win = window_2d(attrs, graph.shapes[x], shape, (weight.shape[2], weight.shape[3]))
        w_id = program.const(f"{label}_w", weight, FLOAT)
        b_id = _optional_const(program, graph, node, 2, f"{label}_b")
        call = (
            f"conv2d_f32({{in0}}, {w_id}, {b_id}, {{out}}, {win.channels}, {win.height}, "
            f"{win.width}, {weight.shape[0]}, {win.out_height}, {win.out_width}, "
            f"{win.kernel_h}, {win.kernel_w}, {win.stride_h}, {win.stride_w}, {win.pad_top}, "
            f"{win.pad_left}, {int(attrs.get('group', 1))}, {lo}, {hi});"
        )
        program.steps.append(Step(op, (x,), output, "conv2d_f32", call))
    elif op in ("Gemm", "MatMul"):
        _lower_dense(program, graph, node, output, lo, hi)
    elif op in _BINARY_CODES:
        _lower_binary(program, graph, node, output)
    elif op in _UNARY_CODES:
        kind = _UNARY_CODES[op]
        if kind == 0:
            low, high = clip_bounds(graph, node)
            lo, hi = c_float(max(low, bounds[0])), c_float(min(high, bounds[1]))
        call = f"unary_f32({{in0}}, {{out}}, {math.prod(shape)}, {kind}, {lo}, {hi});"
        program.steps.append(Step(op, (x,), output, "unary_f32", call, in_place=True))
    elif op == "Softmax":
        axis = int(attributes(node).get("axis", -1 if graph.opset >= 13 else 1))
        axis = axis + len(shape) if axis < 0 else axis
        cols = math.prod(shape[axis:])
        call = f"softmax_f32({{in0}}, {{out}}, {math.prod(shape) // cols}, {cols});"
        program.steps.append(Step(op, (x,), output, "softmax_f32", call))
    elif op in ("MaxPool", "AveragePool"):
        attrs = attributes(node)
        kernel = tuple(attrs["kernel_shape"])
        win = window_2d(attrs, graph.shapes[x], shape, (kernel[0], kernel[1]))
        include_pad = int(attrs.get("count_include_pad", 0))
        call = (
            f"pool2d_f32({{in0}}, {{out}}, {win.channels}, {win.c_args()}, "
            f"{int(op == 'MaxPool')}, {include_pad});"
        )
        program.steps.append(Step(op, (x,), output, "pool2d_f32", call))
    elif op == "GlobalAveragePool":
        in_shape = graph.shapes[x]
        call = f"global_avgpool_f32({{in0}}, {{out}}, {in_shape[1]}, {math.prod(in_shape[2:])});"
        program.steps.append(Step(op, (x,), output, "global_avgpool_f32", call))
    elif op == "BatchNormalization":
        gamma, beta, mean, var = (np.asarray(graph.consts[n], np.float64) for n in node.input[1:5])
        bn_scale = gamma / np.sqrt(var + float(attributes(node).get("epsilon", 1e-5)))
        s_id = program.const(f"{label}_scale", bn_scale, FLOAT)
        t_id = program.const(f"{label}_shift", beta - mean * bn_scale, FLOAT)
        call = f"affine_f32({{in0}}, {s_id}, {t_id}, {{out}}, {shape[1]}, {math.prod(shape[2:])});"
        program.steps.append(Step(op, (x,), output, "affine_f32", call, in_place=True))
    else:  # check_model rejects everything else before lowering starts
        raise AssertionError(f"no fp32 lowering for {op}")


def _qparams(graph: PreparedGraph, node: Any) -> tuple[float, int]:
    params = activation_qparams(graph, node)
    if params is None:
        raise AssertionError(f"{node.op_type} {node_label(node)!r} is not per-tensor")
    return params


def _optional_const(
    program: Program, graph: PreparedGraph, node: Any, index: int, hint: str
) -> str:
    if len(node.input) <= index or not node.input[index]:
        return "NULL"
    return program.const(hint, np.asarray(graph.consts[node.input[index]]), FLOAT)


def _lower_dense(
    program: Program, graph: PreparedGraph, node: Any, output: str, lo: str, hi: str
) -> None:
    """Gemm and MatMul: alpha, beta and the weight transpose are folded into the constants so
    the kernel always reads the weight as [n][k]."""
    x = node.input[0]
    label = node_label(node)
    weight = np.asarray(graph.consts[node.input[1]], dtype=np.float64)
    in_shape = graph.shapes[x]
    out_shape = graph.shapes[output]
    n = out_shape[-1]
    bias: np.ndarray | None = None
    if node.op_type == "Gemm":
        attrs = attributes(node)
        trans_a, trans_b = int(attrs.get("transA", 0)), int(attrs.get("transB", 0))
        weight = (weight if trans_b else weight.T) * float(attrs.get("alpha", 1.0))
        rows, k = (in_shape[1], in_shape[0]) if trans_a else (in_shape[0], in_shape[1])
        xs_r, xs_i = (1, rows) if trans_a else (k, 1)
        if len(node.input) > 2 and node.input[2]:
            bias = np.asarray(graph.consts[node.input[2]], np.float64) * float(
                attrs.get("beta", 1.0)
            )
    else:
        weight = weight.T
        k = in_shape[-1]
        rows = math.prod(in_shape[:-1])
        xs_r, xs_i = k, 1
    w_id = program.const(f"{label}_w", weight, FLOAT)
    b_id, bias_rs = "NULL", 0
    if bias is not None:
        if bias.size in (1, n) and (bias.ndim < 2 or bias.shape[0] == 1):
            b_id = program.const(f"{label}_b", np.broadcast_to(bias.reshape(-1), (n,)), FLOAT)
        else:
            b_id = program.const(f"{label}_b", np.broadcast_to(bias, (rows, n)), FLOAT)
            bias_rs = n
    call = (
        f"dense_f32({{in0}}, {w_id}, {b_id}, {{out}}, {rows}, {k}, {n}, {xs_r}, {xs_i}, "
        f"{bias_rs}, {lo}, {hi});"
    )
    program.steps.append(Step(node.op_type, (x,), output, "dense_f32", call))


def broadcast_strides(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> list[int]:
    """Element strides of ``shape`` read at the 4-D index space of ``out_shape`` (0 where the
    operand is broadcast)."""
    padded = (1,) * (4 - len(shape)) + tuple(shape[-4:]) if len(shape) <= 4 else shape[-4:]
    contiguous = [math.prod(padded[i + 1 :]) for i in range(4)]
    return [0 if padded[i] == 1 and out_shape[i] != 1 else contiguous[i] for i in range(4)]


def squeeze_to_4d(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """Drop leading 1s until the shape has rank <= 4 and left-pad to exactly 4."""
    dims = list(shape)
    while len(dims) > 4 and dims[0] == 1:
        dims.pop(0)
    if len(dims) > 4:
        return None
    return (1,) * (4 - len(dims)) + tuple(dims)


def _lower_binary(program: Program, graph: PreparedGraph, node: Any, output: str) -> None:
    out4 = squeeze_to_4d(graph.shapes[output])
    assert out4 is not None
    operands: list[str] = []
    inputs: list[str] = []
    strides: list[list[int]] = []
    for index, name in enumerate(node.input[:2]):
        if name in graph.consts:
            value = np.asarray(graph.consts[name], dtype=np.float32)
            operands.append(program.const(f"{node_label(node)}_{index}", value, FLOAT))
            strides.append(broadcast_strides(_trim(value.shape), out4))
        else:
            operands.append(f"{{in{len(inputs)}}}")
            inputs.append(name)
            strides.append(broadcast_strides(_trim(graph.shapes[name]), out4))

    def literal(values: list[int] | tuple[int, ...]) -> str:
        return "(const int[]){{" + ", ".join(str(v) for v in values) + "}}"

    call = (
        f"binary_f32({operands[0]}, {operands[1]}, {{out}}, {_BINARY_CODES[node.op_type]}, "
        f"{literal(out4)}, {literal(strides[0])}, {literal(strides[1])});"
    )
    program.steps.append(
        Step(node.op_type, tuple(inputs), output, "binary_f32", call, in_place=True)
    )


def _trim(shape: tuple[int, ...]) -> tuple[int, ...]:
    dims = list(shape)
    while len(dims) > 4 and dims[0] == 1:
        dims.pop(0)
    return tuple(dims)
