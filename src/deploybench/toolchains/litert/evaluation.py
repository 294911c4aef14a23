"""How much dynamic-range INT8 changes the model's answers: fp32 and int8 ``.tflite`` run in
the LiteRT interpreter on the start of the dataset."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.metrics.classification import scores_to_labels
from deploybench.problems.resolved import ResolvedProblem
from deploybench.spec.problem import TaskKind
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
    before = np.asarray(_first_output(reference, problem, batch, xnnpack), dtype=np.float64)
    after = np.asarray(_first_output(quantized, problem, batch, xnnpack), dtype=np.float64)
    difference = np.abs(after - before)
    report: dict[str, Any] = {
        "samples": int(before.shape[0]),
        "output": problem.outputs[0].name if problem.outputs else "0",
        "xnnpack": xnnpack,
        "max_abs_difference": float(difference.max()) if difference.size else 0.0,
        "mean_abs_difference": float(difference.mean()) if difference.size else 0.0,
    }
    if problem.task is TaskKind.CLASSIFICATION:
        labels_before, labels_after = scores_to_labels(before), scores_to_labels(after)
        report["label_agreement"] = float(np.mean(labels_before == labels_after))
        truth = problem.load_truth(limit=before.shape[0])
        if truth is not None:
            accuracy_before = float(np.mean(labels_before == truth))
            accuracy_after = float(np.mean(labels_after == truth))
            report.update(
                reference_accuracy=accuracy_before,
                int8_accuracy=accuracy_after,
                accuracy_drop=accuracy_before - accuracy_after,
            )
    return report


def describe_evaluation(report: Mapping[str, Any]) -> str:
    """One log line with the figures of :func:`evaluate`."""
    text = (
        f"int8 vs fp32 .tflite on {report['samples']} samples, output '{report['output']}': "
        f"max |diff| {report['max_abs_difference']:.4g}, "
        f"mean |diff| {report['mean_abs_difference']:.4g}"
    )
    if "label_agreement" in report:
        text += f"; label agreement {report['label_agreement']:.4f}"
    if "accuracy_drop" in report:
        text += (
            f"; accuracy {report['reference_accuracy']:.4f} -> {report['int8_accuracy']:.4f} "
            f"(accuracy drop {report['accuracy_drop']:+.4f})"
        )
    return text
