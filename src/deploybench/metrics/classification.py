"""Classification metrics of predicted labels against ground truth."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
from sklearn.utils.multiclass import unique_labels

from deploybench.metrics._model import ResultModel
from deploybench.metrics.proportions import proportion_ci


class ClassMetrics(ResultModel):
    """Precision, recall and F1 of one class; ``support`` is its count in ``y_true``."""

    precision: float
    recall: float
    f1: float
    support: int


class ClassificationMetrics(ResultModel):
    """Accuracy (with a Clopper-Pearson interval), macro averages and per-class metrics.

    ``per_class`` is keyed by the label as a string (JSON object keys are strings);
    ``confusion_matrix[i][j]`` counts samples of true label ``labels[i]`` predicted as
    ``labels[j]``. Precision, recall or F1 of a class with no predicted (or no true) samples is
    0, as sklearn's ``zero_division=0`` defines it.
    """

    n: int
    accuracy: float
    accuracy_ci: tuple[float, float]
    confidence: float
    precision_macro: float
    recall_macro: float
    f1_macro: float
    per_class: dict[str, ClassMetrics]
    labels: list[int]
    confusion_matrix: list[list[int]]


def scores_to_labels(scores: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Predicted labels from model outputs.

    - 2-D or higher (``(N, C)`` logits or probabilities): arg-max over the last axis. A last
      axis of size 1 is a single score per sample and is handled as 1-D.
    - 1-D integer or boolean: already labels, passed through.
    - 1-D float in ``[0, 1]``: probability of class 1; label 1 when it is above 0.5 (ties go to
      class 0, as sklearn's arg-max over ``predict_proba`` does).
    - 1-D float of whole numbers: labels stored as floats.

    Raises:
        ValueError: on 1-D floats that are neither probabilities nor whole numbers (e.g. raw
            logits of a binary model, where the cut-off would have to be guessed), or 0-D input.
    """
    x = np.asarray(scores)
    if x.ndim >= 2 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim == 0:
        raise ValueError("scores must have a sample axis, got a scalar")
    if x.ndim >= 2:
        return np.asarray(np.argmax(x, axis=-1), dtype=np.int64)
    if x.dtype.kind in "biu":
        return x.astype(np.int64)
    if x.size == 0 or (np.all(x >= 0.0) and np.all(x <= 1.0)):
        return (x > 0.5).astype(np.int64)
    if np.all(np.isfinite(x)) and np.all(x == np.round(x)):
        return x.astype(np.int64)
    raise ValueError(
        "1-D float scores must be probabilities in [0, 1] or whole-number labels; "
        f"got values in [{np.nanmin(x)}, {np.nanmax(x)}]"
    )


def classification_metrics(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    confidence: float,
    labels: Sequence[int] | None = None,
) -> ClassificationMetrics:
    """Accuracy, macro precision/recall/F1, per-class metrics and the confusion matrix.

    Args:
        y_true: 1-D ground-truth labels.
        y_pred: 1-D predicted labels (see :func:`scores_to_labels` for raw model outputs).
        confidence: level of the accuracy interval.
        labels: the classes to report, in order; by default every label seen in either input.
            Macro averages are over these labels, so a class absent from both inputs but listed
            here counts as 0 in them.

    Raises:
        ValueError: when the inputs are empty, not 1-D or of different lengths.
    """
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.ndim != 1 or p.ndim != 1 or t.shape != p.shape:
        raise ValueError(
            f"y_true and y_pred must be 1-D of the same length, got shapes {t.shape} and {p.shape}"
        )
    if t.size == 0:
        raise ValueError("classification metrics need at least one sample")
    label_list = [int(v) for v in (unique_labels(t, p) if labels is None else labels)]
    correct = int(np.count_nonzero(t == p))
    precision, recall, f1, support = precision_recall_fscore_support(
        t, p, labels=label_list, average=None, zero_division=0
    )
    macro = precision_recall_fscore_support(
        t, p, labels=label_list, average="macro", zero_division=0
    )
    matrix = confusion_matrix(t, p, labels=label_list)
    return ClassificationMetrics(
        n=int(t.size),
        accuracy=float(accuracy_score(t, p)),
        accuracy_ci=proportion_ci(correct, int(t.size), confidence),
        confidence=confidence,
        precision_macro=float(macro[0]),
        recall_macro=float(macro[1]),
        f1_macro=float(macro[2]),
        per_class={
            str(label): ClassMetrics(
                precision=float(precision[i]),
                recall=float(recall[i]),
                f1=float(f1[i]),
                support=int(support[i]),
            )
            for i, label in enumerate(label_list)
        },
        labels=label_list,
        confusion_matrix=[[int(v) for v in row] for row in matrix],
    )
