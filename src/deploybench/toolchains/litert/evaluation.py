"""How much dynamic-range INT8 changes the model's answers: fp32 and int8 ``.tflite`` run in
the LiteRT interpreter on the start of the dataset."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deploybench.problems.resolved import ResolvedProblem
from deploybench.toolchains.int8_report import compare_outputs, describe_comparison
from deploybench.toolchains.litert.runtime import LiteRtRunner, run_all

# Samples the fp32 and int8 models are compared on (at most).
EVALUATION_SAMPLES = 1000


def _first_output(path: Path, problem: ResolvedProblem, batch: int, xnnpack: bool) -> Any:
    runner = LiteRtRunner(path, xnnpack=xnnpack, threads=1, batch=batch)
    try:
        arrays = problem.load_inputs(limit=min(problem.n_samples, EVALUATION_SAMPLES))
        outputs = run_all(runner, [arrays[spec.name] for spec in problem.inputs])
    finally:
        runner.close()
    return outputs[0]


def evaluate(
    reference: Path, quantized: Path, problem: ResolvedProblem, batch: int, xnnpack: bool
) -> dict[str, Any]:
    """Largest and mean output difference, label agreement, and for labelled
    classification the accuracy of each and the drop. No calibration data is involved
    (dynamic range), so the samples are not seen by the quantizer."""
    before = _first_output(reference, problem, batch, xnnpack)
    after = _first_output(quantized, problem, batch, xnnpack)
    return {**compare_outputs(problem, before, after), "xnnpack": xnnpack}


def describe_evaluation(report: Mapping[str, Any]) -> str:
    """One log line with the figures of :func:`evaluate`."""
    return describe_comparison(report, "int8 vs fp32 .tflite")
