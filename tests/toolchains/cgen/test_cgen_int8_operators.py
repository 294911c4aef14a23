"""Integer kernels one pattern at a time: small float graphs quantized with quantize_static
(QDQ, per-channel, uint8 activations), generated as C and compared with ONNX Runtime's
reference QDQ semantics (optimizations off) in units of the output quantization step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(1)
MAX_STEPS = 1
# The integer convolution rounds exactly where float QDQ rounds a float32 sum, so rare ties
# land one step apart; an Add whose output scale is finer than its inputs' magnifies that
# step (here by about 3). Average pooling rounds the mean before rescaling, and the tiny
# gap-matmul output (200 values) propagates its input's rare ties.
MAX_STEPS_FOR = {"residual-add": 3}
MAX_OFF_BY_ONE = {"avgpool": 0.1, "gap-matmul": 0.1}


def _w(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.3).astype(np.float32)


CASES: dict[str, tuple[list[Any], dict[str, np.ndarray], list[int], dict[str, int]]] = {
    "conv-stride2-relu": (
        [
            helper.make_node(
                "Conv",
                ["input", "w", "b"],
                ["c"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
            ),
            helper.make_node("Relu", ["c"], ["y"]),
        ],
        {"w": _w(4, 3, 3, 3), "b": _w(4)},
        [1, 3, 8, 8],
        {"QLinearConv": 1},
    ),
    "depthwise-clip": (
        [
            helper.make_node(
                "Conv", ["input", "w"], ["c"], kernel_shape=[3, 3], group=3, pads=[1, 1, 1, 1]
            ),
            helper.make_node("Clip", ["c", "lo", "hi"], ["y"]),
        ],
        {"w": _w(3, 1, 3, 3), "lo": np.array(0.0, np.float32), "hi": np.array(0.5, np.float32)},
        [1, 3, 6, 6],
        {"QLinearConv": 1},
    ),
    "residual-add": (
        [
            helper.make_node("Conv", ["input", "w"], ["a"], kernel_shape=[1, 1]),
            helper.make_node("Conv", ["input", "w2"], ["b"], kernel_shape=[1, 1]),
            helper.make_node("Add", ["a", "b"], ["s"]),
            helper.make_node("Relu", ["s"], ["y"]),
        ],
        {"w": _w(4, 3, 1, 1), "w2": _w(4, 3, 1, 1)},
        [1, 3, 4, 4],
        {"QLinearAdd": 1},
    ),
    "gap-matmul": (
        [
            helper.make_node("Conv", ["input", "w"], ["a"], kernel_shape=[1, 1]),
            helper.make_node("GlobalAveragePool", ["a"], ["g"]),
            helper.make_node("Flatten", ["g"], ["f"]),
            helper.make_node("MatMul", ["f", "m"], ["y"]),
        ],
        {"w": _w(4, 3, 1, 1), "m": _w(4, 5)},
        [1, 3, 4, 4],
        {"QLinearGlobalAveragePool": 1, "QLinearMatMul": 1},
    ),
    "avgpool": (
        [
            helper.make_node("Conv", ["input", "w"], ["a"], kernel_shape=[1, 1]),
            helper.make_node("AveragePool", ["a"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        ],
        {"w": _w(4, 3, 1, 1)},
        [1, 3, 5, 5],
        {"QLinearAveragePool": 1},
    ),
    "float-fallback-swish": (
        [
            helper.make_node("Conv", ["input", "w"], ["a"], kernel_shape=[1, 1]),
            helper.make_node("Sigmoid", ["a"], ["s"]),
            helper.make_node("Mul", ["a", "s"], ["y"]),
        ],
        {"w": _w(4, 3, 1, 1)},
        [1, 3, 5, 5],
        {"Sigmoid": 1, "Mul": 1, "QLinearConv": 1},
    ),
}


def _quantized(name: str, tmp_path: Path, x: np.ndarray) -> Path:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    nodes, inits, shape, _ = CASES[name]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *shape[1:]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(value, key) for key, value in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    float_path, qdq_path = tmp_path / "float.onnx", tmp_path / "qdq.onnx"
    onnx.save(model, str(float_path))

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._feeds: Iterator[dict[str, np.ndarray]] = iter(
                {"input": x[i : i + 1]} for i in range(30)
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    quantize_static(
        str(float_path),
        str(qdq_path),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return qdq_path


@pytest.mark.parametrize("name", sorted(CASES))
def test_int8_pattern_matches_reference_qdq(name: str, build_c: Any, tmp_path: Path) -> None:
    shape, expected_ops = CASES[name][2], CASES[name][3]
    x = RNG.random((40, *shape[1:])).astype(np.float32)
    qdq = _quantized(name, tmp_path, x)
    model = onnx.load(str(qdq))
    generated, host = build_c(model)
    for op, count in expected_ops.items():
        assert generated.operators.get(op) == count, generated.operators
    last = model.graph.node[-1]
    scale = float(numpy_helper.to_array(_initializer(model, last.input[1])))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(qdq), options, providers=["CPUExecutionProvider"])
    reference = session.run(None, {"input": x})[0]
    steps = np.round(np.abs(host.run(x) - reference) / scale)
    assert steps.max() <= MAX_STEPS_FOR.get(name, MAX_STEPS)
    assert float(np.mean(steps > 0)) <= MAX_OFF_BY_ONE.get(name, 0.02)


def _initializer(model: Any, name: str) -> Any:
    return next(init for init in model.graph.initializer if init.name == name)


def test_handwritten_qdq_with_float_weights_quantized_in_graph(build_c: Any) -> None:
    """Weights stored as float and quantized by a QuantizeLinear inside the graph are folded
    to int8 constants, and the Relu before the output QuantizeLinear becomes the clamp."""
    w = _w(4, 2, 3, 3)

    def scalar(value: float, dtype: Any) -> np.ndarray:
        return np.array(value, dtype=dtype)

    inits = {
        "w": w,
        "ws": scalar(float(np.abs(w).max()) / 127, np.float32),
        "wz": scalar(0, np.int8),
        "xs": scalar(1 / 255, np.float32),
        "xz": scalar(0, np.uint8),
        "ys": scalar(0.02, np.float32),
        "yz": scalar(0, np.uint8),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["input", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("QuantizeLinear", ["w", "ws", "wz"], ["wq"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
        helper.make_node("Conv", ["xd", "wd"], ["c"], kernel_shape=[3, 3], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(value, key) for key, value in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    generated, host = build_c(model)
    assert generated.operators == {"DequantizeLinear": 1, "QLinearConv": 1, "QuantizeLinear": 1}
    assert generated.folded == ["Relu 'relu' into int8 Conv 'conv'"]
    x = RNG.random((10, 2, 6, 6)).astype(np.float32)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options)
    reference = session.run(None, {"input": x})[0]
    assert np.abs(host.run(x) - reference).max() <= 0.02 + 1e-6
