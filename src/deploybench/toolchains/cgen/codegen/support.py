"""``check_model``: every reason a model cannot be generated, found before any code is written."""

from __future__ import annotations

from typing import Any

import numpy as np

from deploybench.toolchains.cgen.codegen.issues import OperatorIssue
from deploybench.toolchains.cgen.codegen.lower_fp32 import squeeze_to_4d
from deploybench.toolchains.cgen.codegen.operators import SUPPORTED_OPERATORS
from deploybench.toolchains.cgen.codegen.prepared_graph import (
    PreparedGraph,
    attributes,
    node_label,
    prepare_graph,
)
from deploybench.toolchains.cgen.codegen.quant_params import activation_qparams


def check_model(model: Any) -> list[OperatorIssue]:
    """All issues that prevent generating C for ``model``; an empty list means it can be
    generated. Unsupported operators are reported even when the graph is otherwise broken."""
    return analyse_model(model)[1]


def analyse_model(model: Any) -> tuple[PreparedGraph | None, list[OperatorIssue]]:
    """``check_model`` that also returns the prepared graph (None when it could not be built)
    so ``generate_c`` folds and infers shapes only once."""
    try:
        graph, issues = prepare_graph(model)
    except Exception as exc:  # onnx raises several unrelated types for malformed graphs
        graph, issues = None, [OperatorIssue("graph", "model", f"shape inference failed: {exc}")]
    if graph is None:
        issues.extend(
            OperatorIssue(node.op_type, node_label(node), "unsupported operator")
            for node in model.graph.node
            if node.op_type not in SUPPORTED_OPERATORS
        )
        return None, issues
    unsupported = [node for node in graph.nodes if node.op_type not in SUPPORTED_OPERATORS]
    # An unsupported node's unknown output shape is a consequence, not a second problem.
    skipped = {node_label(node) for node in unsupported}
    issues = [issue for issue in issues if issue.node not in skipped]
    issues.extend(
        OperatorIssue(node.op_type, node_label(node), "unsupported operator")
        for node in unsupported
    )
    for node in graph.nodes:
        if node.op_type not in SUPPORTED_OPERATORS:
            continue
        issues.extend(
            OperatorIssue(node.op_type, node_label(node), reason)
            for reason in node_problems(graph, node)
        )
    return graph, issues


def node_problems(graph: PreparedGraph, node: Any) -> list[str]:
    """Reasons a supported operator cannot be lowered with these attributes and inputs."""
    op = node.op_type
    attrs = attributes(node)
    problems: list[str] = []
    if op in ("Conv", "MaxPool", "AveragePool"):
        rank = len(graph.shapes.get(node.input[0], ()))
        if rank != 4:
            problems.append(f"only 2-D (NCHW) inputs are supported, got rank {rank}")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            problems.append(f"dilations {list(attrs['dilations'])} are not supported (only 1)")
        if int(attrs.get("ceil_mode", 0)):
            problems.append("ceil_mode=1 is not supported")
        if int(attrs.get("storage_order", 0)) or len([o for o in node.output if o]) > 1:
            problems.append("MaxPool indices output / storage_order are not supported")
    if op in ("Conv", "Gemm", "MatMul"):
        problems.extend(_const_inputs(graph, node, range(1, len(node.input)), "weights/bias"))
    if op == "MatMul" and not problems and np.asarray(graph.consts[node.input[1]]).ndim != 2:
        problems.append("only a 2-D constant second operand is supported")
    if op == "Gemm" and not problems:
        bias = node.input[2] if len(node.input) > 2 else ""
        if bias and np.asarray(graph.consts[bias]).ndim > 2:
            problems.append("bias must be at most 2-D")
    if op in ("Add", "Mul", "Sub", "Div"):
        shape = graph.shapes[node.output[0]]
        if squeeze_to_4d(shape) is None:
            problems.append(f"broadcasting beyond 4 dimensions is not supported ({shape})")
    if op == "Softmax" and graph.opset >= 13:
        rank = len(graph.shapes[node.input[0]])
        axis = int(attrs.get("axis", -1))
        if axis not in (-1, rank - 1):
            problems.append(f"only the last axis is supported, got axis={axis}")
    if op == "Clip":
        problems.extend(_const_inputs(graph, node, range(1, len(node.input)), "min/max"))
    if op == "BatchNormalization":
        problems.extend(_const_inputs(graph, node, range(1, 5), "scale/bias/mean/var"))
        if int(attrs.get("training_mode", 0)) or len([o for o in node.output if o]) > 1:
            problems.append("training mode is not supported")
    if op == "GlobalAveragePool" and len(graph.shapes[node.input[0]]) < 3:
        problems.append("input must be at least 3-D (N, C, spatial...)")
    if op in ("QuantizeLinear", "DequantizeLinear") and activation_qparams(graph, node) is None:
        problems.append("only per-tensor 8-bit quantization of activations is supported")
    return problems


def _const_inputs(graph: PreparedGraph, node: Any, indices: range, what: str) -> list[str]:
    missing = [
        node.input[i] for i in indices if node.input[i] and node.input[i] not in graph.consts
    ]
    if not missing:
        return []
    return [f"{what} must be constant (initializers), {', '.join(missing)} is computed"]
