"""The digits zoo models generated as C: fp32 against ONNX Runtime, and QDQ int8 (from
onnxruntime.quantization.quantize_static) against ONNX Runtime running the same QDQ model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

FP32_MIN_AGREEMENT = 0.99
FP32_MAX_ABS = 1e-4
INT8_MIN_AGREEMENT = 0.99
# Against ORT's reference QDQ semantics (graph optimizations off: float ops between
# DequantizeLinear/QuantizeLinear) the integer kernels differ only by rounding ties.
INT8_MAX_STEPS_VS_REFERENCE = 2
CALIBRATION_SAMPLES = 100


def _ort(path: Path, x: np.ndarray, optimize: bool = True) -> np.ndarray:
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"input": x})[0])


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
def test_fp32_digits_model_matches_onnxruntime(
    name: str, build_c: Any, digits: dict[str, np.ndarray], zoo_path: Callable[[str], Path]
) -> None:
    path = zoo_path(name)
    generated, host = build_c(onnx.load(str(path)))
    x = digits["input"]
    expected = _ort(path, x)
    actual = host.run(x)
    agreement = float(np.mean(actual.argmax(1) == expected.argmax(1)))
    assert agreement >= FP32_MIN_AGREEMENT
    assert float(np.abs(actual - expected).max()) < FP32_MAX_ABS
    assert generated.precision == "fp32"
    assert generated.input_shape == (1, 64)
    assert generated.output_shape == (1, 10)
    assert generated.input_name == "input"
    assert generated.output_name == "logits"
    # Every parameter lands in const arrays: the float count of the model's initializers.
    model = onnx.load(str(path))
    floats = sum(
        numpy_helper.to_array(i).nbytes
        for i in model.graph.initializer
        if i.data_type == onnx.TensorProto.FLOAT
    )
    assert generated.weights_bytes == floats


def _quantize(path: Path, out: Path, x: np.ndarray, per_channel: bool, activation: str) -> Path:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._feeds: Iterator[dict[str, np.ndarray]] = iter(
                {"input": x[i : i + 1]} for i in range(CALIBRATION_SAMPLES)
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    quantize_static(
        str(path),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=getattr(QuantType, activation),
        weight_type=QuantType.QInt8,
    )
    return out


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
@pytest.mark.parametrize(
    ("per_channel", "activation"), [(True, "QUInt8"), (False, "QInt8"), (True, "QInt8")]
)
def test_int8_qdq_model_matches_onnxruntime(
    name: str,
    per_channel: bool,
    activation: str,
    build_c: Any,
    digits: dict[str, np.ndarray],
    zoo_path: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    x = digits["input"]
    qdq = _quantize(zoo_path(name), tmp_path / "qdq.onnx", x, per_channel, activation)
    generated, host = build_c(onnx.load(str(qdq)))
    assert generated.precision == "int8"
    ops = generated.operators
    assert ops["QGemm"] == 1 if name == "digits-cnn" else ops["QGemm"] == 2
    assert "Gemm" not in ops  # everything compute-heavy runs on integers
    actual = host.run(x)
    expected = _ort(qdq, x)
    agreement = float(np.mean(actual.argmax(1) == expected.argmax(1)))
    assert agreement >= INT8_MIN_AGREEMENT
    scale = _output_scale(qdq)
    reference = _ort(qdq, x, optimize=False)
    steps = np.abs(actual - reference) / scale
    assert float(steps.max()) <= INT8_MAX_STEPS_VS_REFERENCE + 1e-3
    assert float(np.mean(actual.argmax(1) == digits["labels"])) > 0.9


def _output_scale(path: Path) -> float:
    model = onnx.load(str(path))
    last = model.graph.node[-1]
    assert last.op_type == "DequantizeLinear"
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return float(inits[last.input[1]])


def test_int8_is_smaller_than_fp32(
    build_c: Any, digits: dict[str, np.ndarray], zoo_path: Callable[[str], Path], tmp_path: Path
) -> None:
    path = zoo_path("digits-cnn")
    fp32, _ = build_c(onnx.load(str(path)))
    qdq = _quantize(path, tmp_path / "q.onnx", digits["input"], True, "QInt8")
    int8, _ = build_c(onnx.load(str(qdq)))
    assert int8.weights_bytes < fp32.weights_bytes / 3
    assert int8.arena_bytes < fp32.arena_bytes / 3


@pytest.mark.slow
def test_resnet18_fp32_matches_onnxruntime(build_c: Any, zoo_path: Callable[[str], Path]) -> None:
    path = zoo_path("resnet18-wd4-digits32")
    # The 50 MB source compiles once; the strict (and cross) checks run on the small models.
    generated, host = build_c(onnx.load(str(path)), strict=False)
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    expected = _ort(path, x)
    np.testing.assert_allclose(host.run(x), expected, rtol=1e-3, atol=1e-3)
    assert generated.operators["Conv"] == 21
    assert generated.operators["Reshape"] == 1  # the Shape->Gather->Concat chain was folded
