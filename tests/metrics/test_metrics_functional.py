"""Proportions, classification, regression and IoU metrics against sklearn and hand cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, jaccard_score, precision_score, r2_score, recall_score

from deploybench.metrics import (
    box_iou,
    classification_metrics,
    mask_iou,
    proportion_ci,
    regression_metrics,
    scores_to_labels,
)

# --- proportions ---------------------------------------------------------------------------


def test_proportion_ci_clopper_pearson_by_hand() -> None:
    # 0 of 10: upper bound solves (1 - p)^10 = 0.025 -> p = 1 - 0.025^(1/10).
    low, high = proportion_ci(0, 10, 0.95)
    assert low == 0.0
    assert high == pytest.approx(1 - 0.025 ** (1 / 10))
    low, high = proportion_ci(10, 10, 0.95)
    assert low == pytest.approx(0.025 ** (1 / 10))
    assert high == 1.0


@pytest.mark.parametrize(("k", "n"), [(0, 0), (-1, 5), (6, 5)])
def test_proportion_ci_rejects_bad_counts(k: int, n: int) -> None:
    with pytest.raises(ValueError):
        proportion_ci(k, n, 0.95)


# --- classification ------------------------------------------------------------------------


def test_classification_hand_case() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    m = classification_metrics(y_true, y_pred, confidence=0.95)
    assert m.n == 8
    assert m.accuracy == 5 / 8
    assert m.accuracy_ci == proportion_ci(5, 8, 0.95)
    assert m.accuracy_ci[0] < 5 / 8 < m.accuracy_ci[1]
    assert m.labels == [0, 1, 2]
    assert m.confusion_matrix == [[2, 1, 0], [0, 1, 1], [1, 0, 2]]
    assert m.precision_macro == pytest.approx(precision_score(y_true, y_pred, average="macro"))
    assert m.recall_macro == pytest.approx(recall_score(y_true, y_pred, average="macro"))
    assert m.f1_macro == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    # Class 1: one of two predicted 1s is right, one of two true 1s found.
    assert m.per_class["1"].precision == 0.5
    assert m.per_class["1"].recall == 0.5
    assert m.per_class["2"].support == 3


def test_classification_explicit_labels_and_zero_division() -> None:
    m = classification_metrics([0, 1], [0, 0], confidence=0.9, labels=[0, 1, 2])
    assert m.per_class["1"].precision == 0.0  # never predicted: zero_division=0
    assert m.per_class["2"].support == 0
    assert m.confusion_matrix == [[1, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert m.model_dump()["per_class"]["0"]["recall"] == 1.0


def test_classification_rejects_mismatch() -> None:
    with pytest.raises(ValueError, match=r"\(3,\) and \(2,\)"):
        classification_metrics([0, 1, 1], [0, 1], confidence=0.95)
    with pytest.raises(ValueError):
        classification_metrics([], [], confidence=0.95)


def test_scores_to_labels() -> None:
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]])
    assert scores_to_labels(logits).tolist() == [1, 0]
    assert scores_to_labels(np.array([0.2, 0.5, 0.9])).tolist() == [0, 0, 1]
    assert scores_to_labels(np.array([[0.7], [0.1]])).tolist() == [1, 0]
    assert scores_to_labels(np.array([3, 1, 2])).tolist() == [3, 1, 2]
    assert scores_to_labels(np.array([3.0, 1.0])).tolist() == [3, 1]
    with pytest.raises(ValueError, match="probabilities"):
        scores_to_labels(np.array([-2.3, 1.7]))


# --- regression ----------------------------------------------------------------------------


def test_regression_against_sklearn_and_adjusted_r2_by_hand() -> None:
    y_true = np.array([[3.0], [-0.5], [2.0], [7.0], [4.2], [1.1]])
    y_pred = np.array([[2.5], [0.0], [2.1], [7.8], [3.9], [1.0]])
    m = regression_metrics(y_true, y_pred, n_features=2)
    t, p = y_true.ravel(), y_pred.ravel()
    assert m.n == 6
    assert m.mse == pytest.approx(np.mean((t - p) ** 2))
    assert m.mae == pytest.approx(np.mean(np.abs(t - p)))
    assert m.rmse == pytest.approx(np.sqrt(np.mean((t - p) ** 2)))
    assert m.r2 == pytest.approx(r2_score(t, p))
    # 1 - (1 - R²)(n - 1)/(n - p - 1) with n = 6, p = 2.
    assert m.adjusted_r2 == pytest.approx(1 - (1 - r2_score(t, p)) * 5 / 3)
    assert m.adjusted_r2_unavailable is None


def test_adjusted_r2_unavailable_when_too_few_samples() -> None:
    m = regression_metrics([1.0, 2.0, 3.0], [1.1, 1.9, 3.2], n_features=2)
    assert m.r2 is not None
    assert m.adjusted_r2 is None
    assert m.adjusted_r2_unavailable is not None and "= 0 <= 0" in m.adjusted_r2_unavailable


def test_r2_unavailable_for_constant_target() -> None:
    m = regression_metrics([2.0, 2.0, 2.0], [2.0, 2.1, 1.9], n_features=0)
    assert m.r2 is None and m.r2_unavailable is not None and "constant" in m.r2_unavailable
    assert m.adjusted_r2 is None


def test_regression_shape_mismatch_names_both() -> None:
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0], n_features=1)


# --- IoU -----------------------------------------------------------------------------------


def test_box_iou_hand_cases() -> None:
    a = np.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    b = np.array([[0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0], [1.0, 0.0, 3.0, 2.0]])
    iou = box_iou(a, b)
    assert iou.shape == (2, 3)
    assert iou[0, 0] == 1.0  # identical
    assert iou[0, 1] == 0.0  # disjoint
    assert iou[0, 2] == pytest.approx(2 / 6)  # half of each box overlaps: 2 / (4 + 4 - 2)
    assert iou[1, 0] == pytest.approx(1 / 4)  # contained
    assert iou[1, 2] == 0.0  # touching edge only


def test_box_iou_degenerate_and_invalid() -> None:
    point = np.array([[1.0, 1.0, 1.0, 1.0]])
    assert box_iou(point, point)[0, 0] == 0.0
    assert box_iou(np.zeros((0, 4)), point).shape == (0, 1)
    with pytest.raises(ValueError, match="x2 < x1"):
        box_iou(np.array([[2.0, 0.0, 1.0, 1.0]]), point)
    with pytest.raises(ValueError, match=r"\(K, 4\)"):
        box_iou(np.zeros((2, 3)), point)


def test_mask_iou_against_sklearn_jaccard() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, size=(4, 8, 8))
    y_pred = np.where(rng.random((4, 8, 8)) < 0.7, y_true, rng.integers(0, 3, size=(4, 8, 8)))
    m = mask_iou(y_true, y_pred, num_classes=4)
    expected = jaccard_score(y_true.ravel(), y_pred.ravel(), labels=[0, 1, 2], average=None)
    assert m.per_class_iou[:3] == pytest.approx(list(expected))
    # Class 3 is in neither mask: reported as None and left out of the mean.
    assert m.per_class_iou[3] is None
    assert m.mean_iou == pytest.approx(float(np.mean(expected)))
    assert m.classes_scored == 3
    assert m.pixel_accuracy == pytest.approx(float(np.mean(y_true == y_pred)))


def test_mask_iou_ignore_index_and_errors() -> None:
    y_true = np.array([[0, 1], [255, 1]])
    y_pred = np.array([[0, 1], [0, 0]])
    m = mask_iou(y_true, y_pred, num_classes=2, ignore_index=255)
    assert m.n_pixels == 3
    assert m.per_class_iou == [pytest.approx(1 / 2), pytest.approx(1 / 2)]
    with pytest.raises(ValueError, match="outside"):
        mask_iou(y_true, y_pred, num_classes=2)
    with pytest.raises(ValueError, match="shape"):
        mask_iou(y_true, y_pred[:1], num_classes=2)
