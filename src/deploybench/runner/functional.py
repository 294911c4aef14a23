"""Functional metrics of a run: accuracy (task-dependent) and semantic preservation."""

from __future__ import annotations

from typing import Any

import numpy as np

from deploybench.metrics.classification import classification_metrics, scores_to_labels
from deploybench.metrics.iou import mask_iou
from deploybench.metrics.regression import regression_metrics
from deploybench.metrics.semantic import semantic_preservation
from deploybench.problems.resolved import ResolvedProblem
from deploybench.problems.tensors import TensorSpec
from deploybench.spec.problem import TaskKind
from deploybench.spec.semantic import Distance, SemanticPreservationSpec


def default_semantic_spec(task: TaskKind) -> SemanticPreservationSpec:
    """Label agreement for classification, 0.1 % relative difference otherwise."""
    if task is TaskKind.CLASSIFICATION:
        return SemanticPreservationSpec(distance=Distance.LABEL, threshold=0.0)
    return SemanticPreservationSpec(distance=Distance.REL, threshold=1e-3)


def select_output(
    outputs: dict[str, np.ndarray], specs: list[TensorSpec], which: str | int
) -> np.ndarray:
    """The output named or indexed by ``which``; a clear error when it does not exist."""
    from deploybench.errors import SpecError

    names = [spec.name for spec in specs]
    if isinstance(which, int):
        if not 0 <= which < len(names):
            raise SpecError(
                f"semantic_preservation.output: index {which} out of range; the model has "
                f"{len(names)} output(s): {', '.join(names)}"
            )
        return outputs[names[which]]
    if which not in outputs:
        raise SpecError(
            f"semantic_preservation.output: no output named '{which}'; outputs: {', '.join(names)}"
        )
    return outputs[which]


def accuracy_metrics(
    problem: ResolvedProblem, prediction: np.ndarray, confidence: float
) -> dict[str, Any]:
    """Task metrics under the record key that fits the task, or why there are none."""
    truth = problem.load_truth(limit=prediction.shape[0])
    if truth is None:
        reason = "the dataset has no 'labels' or 'targets' array"
        key = "regression" if problem.task is TaskKind.REGRESSION else "accuracy"
        return {key: {"unavailable": reason}}
    if problem.task is TaskKind.CLASSIFICATION:
        labels = scores_to_labels(prediction)
        result = classification_metrics(truth.astype(np.int64), labels, confidence=confidence)
        return {"accuracy": result.model_dump(mode="json")}
    if problem.task is TaskKind.REGRESSION:
        n_features = int(np.prod([d for d in problem.inputs[0].shape[1:] if isinstance(d, int)]))
        reg = regression_metrics(truth, prediction, n_features=n_features)
        return {"regression": reg.model_dump(mode="json")}
    if problem.task is TaskKind.SEGMENTATION:
        classes = int(prediction.shape[1]) if prediction.ndim == 4 else int(truth.max()) + 1
        masks = prediction.argmax(axis=1) if prediction.ndim == 4 else prediction
        seg = mask_iou(truth, masks, num_classes=classes)
        return {"accuracy": seg.model_dump(mode="json")}
    return {
        "accuracy": {
            "unavailable": f"no accuracy metric is defined yet for task '{problem.task.value}'; "
            "semantic preservation still compares outputs with the reference"
        }
    }


def preservation_metrics(
    deployed: np.ndarray, reference: np.ndarray, spec: SemanticPreservationSpec, confidence: float
) -> dict[str, Any]:
    """Ratio of identical outputs with its confidence interval."""
    result = semantic_preservation(deployed, reference, spec, confidence=confidence)
    return result.model_dump(mode="json")
