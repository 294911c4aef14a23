"""Turn an ONNX model into a static graph: batch fixed to 1, every shape known, and every
subgraph that depends only on constants (including Shape of a static tensor) folded away."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from deploybench.toolchains.cgen.codegen.issues import OperatorIssue

_MAX_FOLD_ROUNDS = 8


@dataclass(frozen=True)
class QuantizedConst:
    """A constant that an int8 model stores quantized: ``float = (q - zero_point) * scale``."""

    values: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int


@dataclass
class PreparedGraph:
    """A static, folded view of the model that the lowering passes read and rewrite."""

    nodes: list[Any]
    consts: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, ...]]
    input_name: str
    output_name: str
    opset: int
    quantized_consts: dict[str, QuantizedConst] = field(default_factory=dict)

    def consumers(self, tensor: str) -> list[Any]:
        """Nodes that read ``tensor``."""
        return [node for node in self.nodes if tensor in node.input]

    def producer(self, tensor: str) -> Any | None:
        """The node that writes ``tensor``, or None for the input and constants."""
        for node in self.nodes:
            if tensor in node.output:
                return node
        return None


def attributes(node: Any) -> dict[str, Any]:
    """A node's attributes as plain Python values."""
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def node_label(node: Any) -> str:
    """The node's name, or its first output when the exporter left it unnamed."""
    return str(node.name or (node.output[0] if node.output else node.op_type))


def prepare_graph(model: Any) -> tuple[PreparedGraph | None, list[OperatorIssue]]:
    """Fix the batch to 1, infer shapes and fold constants; report what prevents a static
    graph (several inputs/outputs, non-float32 I/O, dynamic dimensions)."""
    issues: list[OperatorIssue] = []
    graph = model.graph
    initializer_names = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializer_names]
    if len(inputs) != 1:
        issues.append(OperatorIssue("graph", "inputs", f"needs exactly 1 input, has {len(inputs)}"))
    if len(graph.output) != 1:
        issues.append(
            OperatorIssue("graph", "outputs", f"needs exactly 1 output, has {len(graph.output)}")
        )
    for value in [*inputs, *graph.output]:
        if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            issues.append(
                OperatorIssue("graph", value.name, "model inputs/outputs must be float32")
            )
    if issues:
        return None, issues

    model = _with_batch_one(model, inputs[0].name)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    consts: dict[str, np.ndarray] = {
        init.name: numpy_helper.to_array(init) for init in model.graph.initializer
    }
    quantized: dict[str, QuantizedConst] = {}
    nodes = list(model.graph.node)
    shapes: dict[str, tuple[int, ...]] = {}
    for _ in range(_MAX_FOLD_ROUNDS):
        shapes = _infer(model, nodes, consts)
        nodes, changed = _fold(nodes, consts, shapes, quantized, opset)
        if not changed:
            break
    dims = inputs[0].type.tensor_type.shape.dim
    shapes[inputs[0].name] = tuple([1] + [d.dim_value for d in dims[1:]])
    for node in nodes:
        for name in node.output:
            shape = shapes.get(name)
            if name and (shape is None or any(d <= 0 for d in shape)):
                issues.append(
                    OperatorIssue(
                        node.op_type,
                        node_label(node),
                        f"shape of output {name!r} cannot be made static with batch 1",
                    )
                )
    if graph.output[0].name in consts:
        issues.append(OperatorIssue("graph", graph.output[0].name, "the output is a constant"))
    if any(d <= 0 for d in shapes[inputs[0].name]):
        issues.append(OperatorIssue("graph", inputs[0].name, "input shape is not static"))
    prepared = PreparedGraph(
        nodes=nodes,
        consts=consts,
        shapes=shapes,
        input_name=inputs[0].name,
        output_name=graph.output[0].name,
        opset=opset,
        quantized_consts=quantized,
    )
    return prepared, issues


def _with_batch_one(model: Any, input_name: str) -> Any:
    """A copy of the model whose input has batch 1 and whose other shapes are forgotten, so
    inference recomputes them statically."""
    new = onnx.ModelProto()
    new.CopyFrom(model)
    for value in new.graph.input:
        if value.name == input_name:
            dims = value.type.tensor_type.shape.dim
            if dims:
                dims[0].ClearField("dim_param")
                dims[0].dim_value = 1
    del new.graph.value_info[:]
    for value in new.graph.output:
        value.type.tensor_type.ClearField("shape")
    return new


def _infer(
    model: Any, nodes: list[Any], consts: dict[str, np.ndarray]
) -> dict[str, tuple[int, ...]]:
    """Run onnx shape inference (with data propagation for Shape->Reshape chains)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.node[:]
    probe.graph.node.extend(nodes)
    del probe.graph.initializer[:]
    probe.graph.initializer.extend(
        numpy_helper.from_array(np.asarray(value), name) for name, value in consts.items()
    )
    inferred = shape_inference.infer_shapes(probe, strict_mode=False, data_prop=True)
    shapes: dict[str, tuple[int, ...]] = {}
    values = [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]
    for value in values:
        tensor_type = value.type.tensor_type
        if tensor_type.HasField("shape"):
            dims = tensor_type.shape.dim
            shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
    for name, value in consts.items():
        shapes[name] = tuple(np.asarray(value).shape)
    return shapes


def _fold(
    nodes: list[Any],
    consts: dict[str, np.ndarray],
    shapes: dict[str, tuple[int, ...]],
    quantized: dict[str, QuantizedConst],
    opset: int,
) -> tuple[list[Any], bool]:
    """Evaluate every node whose inputs are all known; return the remaining nodes."""
    kept: list[Any] = []
    changed = False
    for node in nodes:
        known = all(name == "" or name in consts for name in node.input)
        if node.op_type == "Shape" and node.input[0] in shapes:
            shape = shapes[node.input[0]]
            if all(d > 0 for d in shape):
                start = attributes(node).get("start", 0)
                end = attributes(node).get("end", len(shape))
                consts[node.output[0]] = np.asarray(shape[start:end], dtype=np.int64)
                changed = True
                continue
        if node.op_type == "DequantizeLinear" and known:
            # Fold to float but keep the integer weights the int8 kernels need.
            consts[node.output[0]] = _dequantize(node, consts, quantized)
            changed = True
            continue
        if known:
            try:
                results = _evaluate(node, consts, opset)
            except Exception:  # the reference runtime lacks it: keep it, check_model decides
                kept.append(node)
                continue
            for name, value in zip(node.output, results, strict=False):
                consts[name] = value
            changed = True
            continue
        kept.append(node)
    return kept, changed


def _dequantize(
    node: Any, consts: dict[str, np.ndarray], quantized: dict[str, QuantizedConst]
) -> np.ndarray:
    values = np.asarray(consts[node.input[0]])
    scale = np.asarray(consts[node.input[1]], dtype=np.float32)
    zero = (
        np.asarray(consts[node.input[2]])
        if len(node.input) > 2 and node.input[2]
        else np.zeros_like(scale, dtype=values.dtype)
    )
    axis = int(attributes(node).get("axis", 1))
    axis = axis + values.ndim if axis < 0 else axis
    quantized[node.output[0]] = QuantizedConst(values, scale, zero, axis)
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * values.ndim
        shape[axis] = scale.size
        return np.asarray(
            (values.astype(np.float32) - zero.reshape(shape)) * scale.reshape(shape), np.float32
        )
    return ((values.astype(np.float32) - zero.astype(np.float32)) * scale).astype(np.float32)


def _evaluate(node: Any, consts: dict[str, np.ndarray], opset: int) -> list[np.ndarray]:
    """Evaluate one node with onnx's reference implementation."""
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(node, opsets={"": opset})
    feeds = {name: consts[name] for name in node.input if name}
    results = evaluator.run(None, feeds)
    return [np.asarray(result) for result in results]
