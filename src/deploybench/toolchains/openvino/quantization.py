"""INT8 post-training quantization with NNCF, and how much it changes the model's answers."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.problems.resolved import ResolvedProblem
from deploybench.toolchains.int8_report import compare_outputs, describe_comparison
from deploybench.toolchains.openvino.config import OpenVinoConfig

# Samples the fp32 and int8 models are compared on after quantization (at most).
EVALUATION_SAMPLES = 1000
# Batch of the comparison when the model takes any batch size.
EVALUATION_BATCH = 64


def static_batch(problem: ResolvedProblem) -> int | None:
    """The model's fixed batch size, or None when its first dimension is dynamic."""
    first = problem.inputs[0].shape[0] if problem.inputs and problem.inputs[0].shape else None
    return first if isinstance(first, int) else None


def feed_batches(
    arrays: Mapping[str, np.ndarray], batch: int, keep_tail: bool = False
) -> list[dict[str, np.ndarray]]:
    """Consecutive batches; a trailing partial batch only with ``keep_tail`` (a fixed-batch
    model cannot take it)."""
    count = int(next(iter(arrays.values())).shape[0])
    stop = count if keep_tail else count - batch + 1
    return [
        {name: np.ascontiguousarray(array[start : start + batch]) for name, array in arrays.items()}
        for start in range(0, max(stop, 0), batch)
    ]


@contextlib.contextmanager
def _nncf_output_to_step_log() -> Iterator[io.StringIO]:
    """NNCF logs through its own stdout handler and draws progress bars on stdout; send the
    records to the root logger (the pipeline step captures them) and the bars to a buffer, so
    `deploybench run --json` keeps a clean stdout."""
    logger = logging.getLogger("nncf")
    handlers, propagate = list(logger.handlers), logger.propagate
    for handler in handlers:
        logger.removeHandler(handler)
    logger.propagate = True
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            yield buffer
    finally:
        logger.propagate = propagate
        for handler in handlers:
            logger.addHandler(handler)


def quantize(
    source: Path, target: Path, problem: ResolvedProblem, config: OpenVinoConfig
) -> dict[str, Any]:
    """Quantize the IR ``source`` into ``target`` (weights stay uncompressed int8/fp32);
    return the parameters that were used."""
    import nncf  # type: ignore[import-untyped]
    import openvino as ov  # type: ignore[import-untyped]

    batch = static_batch(problem) or 1
    samples = min(config.calibration_samples, problem.n_samples)
    batches = feed_batches(problem.load_inputs(limit=samples), batch)
    if not batches:
        raise ValueError(
            f"the model takes batches of {batch} but calibration has only {samples} samples"
        )
    model = ov.Core().read_model(str(source))
    with _nncf_output_to_step_log():
        quantized = nncf.quantize(
            model,
            nncf.Dataset(batches),
            preset=nncf.QuantizationPreset(config.quantization_preset),
            target_device=nncf.TargetDevice.CPU,
            subset_size=len(batches),
        )
    ov.save_model(quantized, str(target), compress_to_fp16=False)
    return {
        "mode": "post-training-int8",
        "preset": config.quantization_preset,
        "target_device": "CPU",
        "calibration_samples": len(batches) * batch,
        "calibration_batch": batch,
    }


def _outputs(model_path: Path, batches: list[dict[str, np.ndarray]]) -> np.ndarray:
    """First output of the model over every batch, at f32 inference precision."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(model_path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    port = compiled.outputs[0]
    return np.concatenate([request.infer(feed)[port] for feed in batches], axis=0)


def evaluate(reference: Path, quantized: Path, problem: ResolvedProblem) -> dict[str, Any]:
    """Compare the fp32 and int8 models on the start of the dataset: accuracy of each and the
    drop (classification with labels), label agreement, and the largest output difference.

    The dataset is also where calibration samples come from, so the figures are optimistic
    for unseen data; the run's own accuracy figures cover every functional sample.
    """
    samples = min(problem.n_samples, EVALUATION_SAMPLES)
    fixed = static_batch(problem)
    batches = feed_batches(
        problem.load_inputs(limit=samples), fixed or EVALUATION_BATCH, keep_tail=fixed is None
    )
    if not batches:
        return {"samples": 0, "skipped": f"the model takes batches of {fixed} samples"}
    return compare_outputs(problem, _outputs(reference, batches), _outputs(quantized, batches))


def describe_evaluation(report: Mapping[str, Any]) -> str:
    """One log line with the figures of :func:`evaluate`."""
    if "skipped" in report:
        return f"int8 vs fp32 comparison skipped: {report['skipped']}"
    return describe_comparison(report, "int8 vs fp32")
