"""How much a quantized model changes the answers of its fp32 source, on the same dataset
samples: the figures the INT8 steps of several toolchains (OpenVINO/NNCF, LiteRT) write to
``quantization_report.json`` and log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from deploybench.metrics.classification import scores_to_labels
from deploybench.problems.resolved import ResolvedProblem
from deploybench.spec.problem import TaskKind


def compare_outputs(problem: ResolvedProblem, before: Any, after: Any) -> dict[str, Any]:
    """Largest and mean difference of the first output, and for classification the label
    agreement; with labels, the accuracy of each model and the drop (fp32 minus int8)."""
    before = np.asarray(before, dtype=np.float64)
    after = np.asarray(after, dtype=np.float64)
    difference = np.abs(after - before)
    report: dict[str, Any] = {
        "samples": int(before.shape[0]),
        "output": problem.outputs[0].name if problem.outputs else "0",
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


def describe_comparison(report: Mapping[str, Any], what: str) -> str:
    """One log line with the figures of :func:`compare_outputs` (``what``: e.g. ``int8 vs
    fp32``)."""
    text = (
        f"{what} on {report['samples']} samples, output '{report['output']}': "
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
