"""Drive the lowering of a prepared graph into a ``Program``: fold BatchNormalization, fuse
activations, match int8 groups, lower the rest in float, and drop dead steps."""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import helper

from deploybench.toolchains.cgen.codegen.lower_fp32 import clip_bounds, lower_fp32_node
from deploybench.toolchains.cgen.codegen.lower_int8 import lower_int8_group, match_int8_group
from deploybench.toolchains.cgen.codegen.prepared_graph import (
    PreparedGraph,
    attributes,
    node_label,
)
from deploybench.toolchains.cgen.codegen.program import FLOAT, Program

_FUSE_INTO = ("Conv", "Gemm", "MatMul")


def lower_graph(graph: PreparedGraph) -> Program:
    """Lower ``graph`` (already checked by ``check_model``) to a program."""
    program = Program(graph.input_name, graph.output_name)
    program.buffer(graph.input_name, graph.shapes[graph.input_name], FLOAT)
    fold_batch_norms(graph, program.folded)
    consumed: set[int] = set()
    for node in graph.nodes:
        if id(node) in consumed:
            continue
        group = match_int8_group(graph, node)
        if group is not None and lower_int8_group(program, graph, group):
            consumed.add(id(group.quantize))
            if group.activation is not None:
                consumed.add(id(group.activation))
                program.folded.append(
                    f"{group.activation.op_type} {node_label(group.activation)!r} into "
                    f"int8 {node.op_type} {node_label(node)!r}"
                )
            continue
        activation = _fusable_activation(graph, node)
        if activation is not None:
            consumed.add(id(activation))
            program.folded.append(
                f"{activation.op_type} {node_label(activation)!r} into "
                f"{node.op_type} {node_label(node)!r}"
            )
            lower_fp32_node(
                program, graph, node, activation.output[0], clip_bounds(graph, activation)
            )
            continue
        lower_fp32_node(program, graph, node, node.output[0])
    _drop_dead_steps(program)
    return program


def _fusable_activation(graph: PreparedGraph, node: Any) -> Any | None:
    """A Relu/Clip that is the only consumer of a Conv/Gemm/MatMul output (float path)."""
    if node.op_type not in _FUSE_INTO or node.output[0] == graph.output_name:
        return None
    consumers = graph.consumers(node.output[0])
    if len(consumers) != 1 or consumers[0].op_type not in ("Relu", "Clip"):
        return None
    if any(name and name not in graph.consts for name in consumers[0].input[1:]):
        return None
    return consumers[0]


def fold_batch_norms(graph: PreparedGraph, folded: list[str]) -> None:
    """Fold each inference BatchNormalization into the float Conv/Gemm feeding it, when that
    output has no other consumer; the rest stay as a per-channel scale/shift."""
    for bn in [node for node in graph.nodes if node.op_type == "BatchNormalization"]:
        producer = graph.producer(bn.input[0])
        if (
            producer is None
            or producer.op_type not in ("Conv", "Gemm")
            or len(graph.consumers(bn.input[0])) != 1
            or bn.input[0] == graph.output_name
            or producer.input[1] not in graph.consts
            or producer.input[1] in graph.quantized_consts
        ):
            continue
        gamma, beta, mean, var = (np.asarray(graph.consts[n], np.float64) for n in bn.input[1:5])
        scale = gamma / np.sqrt(var + float(attributes(bn).get("epsilon", 1e-5)))
        replacement = _scaled_producer(graph, producer, scale, beta - mean * scale, bn.output[0])
        if replacement is None:
            continue
        index = graph.nodes.index(producer)
        graph.nodes[index] = replacement
        graph.nodes.remove(bn)
        folded.append(
            f"BatchNormalization {node_label(bn)!r} into {producer.op_type} "
            f"{node_label(producer)!r}"
        )


def _scaled_producer(
    graph: PreparedGraph, node: Any, scale: np.ndarray, shift: np.ndarray, output: str
) -> Any | None:
    """``node`` with its output channels multiplied by ``scale`` and ``shift`` added."""
    label = node_label(node)
    weight = np.asarray(graph.consts[node.input[1]], np.float64)
    channels = scale.size
    has_bias = len(node.input) > 2 and node.input[2]
    attrs = attributes(node)
    if node.op_type == "Conv":
        bias = np.asarray(graph.consts[node.input[2]], np.float64) if has_bias else 0.0
        new_weight = weight * scale.reshape(-1, 1, 1, 1)
        new_bias = bias * scale + shift
    else:
        trans_b = int(attrs.get("transB", 0))
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
        bias = np.asarray(graph.consts[node.input[2]], np.float64) * beta if has_bias else 0.0
        if np.size(bias) not in (1, channels) or graph.shapes[node.input[0]][0] != 1:
            return None
        bias = np.broadcast_to(np.reshape(bias, -1), (channels,))
        new_weight = alpha * (weight * scale.reshape(-1, 1) if trans_b else weight * scale)
        new_bias = bias * scale + shift
        attrs = {**attrs, "alpha": 1.0, "beta": 1.0}
    w_name, b_name = f"{label}__bn_w", f"{label}__bn_b"
    graph.consts[w_name] = new_weight.astype(np.float32)
    graph.consts[b_name] = np.asarray(new_bias, np.float32)
    graph.shapes[w_name], graph.shapes[b_name] = new_weight.shape, (channels,)
    return helper.make_node(
        node.op_type, [node.input[0], w_name, b_name], [output], name=node.name, **attrs
    )


def _drop_dead_steps(program: Program) -> None:
    """Remove steps whose outputs nobody reads (e.g. DequantizeLinear nodes whose float
    output was absorbed by an int8 group)."""
    needed = {program.output_name}
    kept = []
    for step in reversed(program.steps):
        if step.output in needed:
            kept.append(step)
            needed.update(step.inputs)
    program.steps = list(reversed(kept))
    live = needed | {program.input_name}
    program.buffers = {name: buf for name, buf in program.buffers.items() if name in live}
