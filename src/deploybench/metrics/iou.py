"""Intersection over union: segmentation masks and bounding boxes."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.metrics import confusion_matrix

from deploybench.metrics._model import ResultModel


class SegmentationMetrics(ResultModel):
    """Per-class and mean IoU of label masks.

    ``per_class_iou[c]`` is the IoU of class ``c``, or None when the class appears in neither
    the ground truth nor the prediction (0/0: there is nothing to score); such classes are
    left out of ``mean_iou`` rather than counted as 0 or 1.
    """

    num_classes: int
    n_pixels: int
    pixel_accuracy: float
    per_class_iou: list[float | None]
    mean_iou: float | None
    mean_iou_unavailable: str | None = None
    classes_scored: int
    ignore_index: int | None = None


def mask_iou(
    y_true_masks: npt.ArrayLike,
    y_pred_masks: npt.ArrayLike,
    num_classes: int,
    ignore_index: int | None = None,
) -> SegmentationMetrics:
    """IoU ``TP / (TP + FP + FN)`` per class over all pixels of all masks, and their mean.

    Pixels are pooled over the whole data set before dividing (the usual semantic-segmentation
    definition), not averaged per image.

    Args:
        y_true_masks: integer class ids, any shape (e.g. ``(N, H, W)``).
        y_pred_masks: predicted class ids of the same shape.
        num_classes: classes are ``0 .. num_classes - 1``.
        ignore_index: ground-truth value of unlabeled pixels (e.g. 255); they are not scored.

    Raises:
        ValueError: on mismatched shapes, no scored pixels, or class ids out of range.
    """
    t = np.asarray(y_true_masks)
    p = np.asarray(y_pred_masks)
    if t.shape != p.shape:
        raise ValueError(f"y_true_masks shape {t.shape} does not match y_pred_masks {p.shape}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    t, p = t.ravel(), p.ravel()
    if ignore_index is not None:
        keep = t != ignore_index
        t, p = t[keep], p[keep]
    if t.size == 0:
        raise ValueError("no pixels to score")
    for name, values in (("y_true_masks", t), ("y_pred_masks", p)):
        if values.min() < 0 or values.max() >= num_classes:
            raise ValueError(
                f"{name} has class ids in [{values.min()}, {values.max()}], "
                f"outside 0..{num_classes - 1}"
            )
    matrix = confusion_matrix(t, p, labels=np.arange(num_classes))
    tp = np.diag(matrix)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - tp
    per_class: list[float | None] = [
        float(tp[c] / union[c]) if union[c] > 0 else None for c in range(num_classes)
    ]
    scored = [v for v in per_class if v is not None]
    return SegmentationMetrics(
        num_classes=num_classes,
        n_pixels=int(t.size),
        pixel_accuracy=float(tp.sum() / t.size),
        per_class_iou=per_class,
        mean_iou=float(np.mean(scored)) if scored else None,
        mean_iou_unavailable=None if scored else "no class present in either mask",
        classes_scored=len(scored),
        ignore_index=ignore_index,
    )


def box_iou(boxes_a: npt.ArrayLike, boxes_b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Pairwise IoU of axis-aligned ``(x1, y1, x2, y2)`` boxes: ``(N, 4), (M, 4) -> (N, M)``.

    Zero-area boxes (``x1 == x2`` or ``y1 == y2``) have IoU 0 with everything, themselves
    included: 0/0 would be undefined, and a degenerate box should never count as a match.

    Raises:
        ValueError: when an input is not ``(K, 4)`` or a box has ``x2 < x1`` or ``y2 < y1``
            (often a sign of ``(x, y, w, h)`` boxes passed by mistake).
    """
    a = _check_boxes("boxes_a", boxes_a)
    b = _check_boxes("boxes_b", boxes_b)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    extent = np.clip(bottom_right - top_left, 0.0, None)
    inter = extent[..., 0] * extent[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    out = np.zeros(inter.shape, dtype=np.float64)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def _check_boxes(name: str, boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Validate ``(K, 4)`` xyxy boxes and return them as float64."""
    x = np.asarray(boxes, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 4:
        raise ValueError(f"{name} must have shape (K, 4) of x1, y1, x2, y2; got {x.shape}")
    bad = (x[:, 2] < x[:, 0]) | (x[:, 3] < x[:, 1])
    if np.any(bad):
        raise ValueError(
            f"{name} row {int(np.argmax(bad))} has x2 < x1 or y2 < y1: boxes must be x1, y1, x2, y2"
        )
    return x
