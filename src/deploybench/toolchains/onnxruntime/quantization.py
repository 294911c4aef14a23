"""Quantization steps of the ONNX Runtime toolchain (dynamic and static QDQ)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from deploybench.problems.resolved import ResolvedProblem
from deploybench.toolchains.onnxruntime.steps import OrtQuantizeStep


def calibration_batches(problem: ResolvedProblem, samples: int) -> Iterator[dict[str, np.ndarray]]:
    """One-sample feeds from the start of the problem's dataset."""
    arrays = problem.load_inputs(limit=samples)
    count = next(iter(arrays.values())).shape[0]
    for i in range(count):
        yield {name: array[i : i + 1] for name, array in arrays.items()}


def quantize(
    source: Path, target: Path, problem: ResolvedProblem, config: OrtQuantizeStep
) -> dict[str, object]:
    """Quantize ``source`` into ``target``; return the parameters that were used."""
    from onnxruntime import quantization as q

    weight_type = q.QuantType.QInt8
    if config.mode == "dynamic-int8":
        q.quantize_dynamic(
            source,
            target,
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            weight_type=weight_type,
        )
        return {
            "mode": "dynamic",
            "weight_type": "int8",
            "per_channel": config.per_channel,
            "reduce_range": config.reduce_range,
        }

    batches = list(calibration_batches(problem, config.calibration_samples))

    class _Reader(q.CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._iterator = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._iterator, None)

    methods = {
        "minmax": q.CalibrationMethod.MinMax,
        "entropy": q.CalibrationMethod.Entropy,
        "percentile": q.CalibrationMethod.Percentile,
    }
    activation = q.QuantType.QInt8 if config.activation_type == "int8" else q.QuantType.QUInt8
    q.quantize_static(
        source,
        target,
        _Reader(),
        quant_format=q.QuantFormat.QDQ,
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        activation_type=activation,
        weight_type=weight_type,
        calibrate_method=methods[config.calibration_method],
    )
    return {
        "mode": "static-qdq",
        "weight_type": "int8",
        "activation_type": config.activation_type,
        "per_channel": config.per_channel,
        "reduce_range": config.reduce_range,
        "calibration_samples": len(batches),
        "calibration_method": config.calibration_method,
    }
