"""Semantic preservation: how often a deployed model's output matches the reference output.

Distances follow :class:`deploybench.spec.Distance`. Every output array has the samples on its
first axis; the remaining axes of one sample are flattened into a vector before comparing.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from deploybench.metrics._model import ResultModel
from deploybench.metrics.proportions import proportion_ci
from deploybench.spec import Distance, SemanticPreservationSpec

FloatArray = npt.NDArray[np.float64]


class SemanticPreservationResult(ResultModel):
    """Share of samples whose deployed output is identical (distance <= threshold) to the reference.

    Infinite or NaN distances (see :func:`output_distances`) are never identical. JSON has no
    infinity, so ``max_distance`` and ``mean_distance`` are over the finite distances only;
    ``non_finite`` counts the others and ``note`` says so when there are any.
    """

    distance: str
    threshold: float
    k: int | None = None
    n: int
    identical: int
    ratio: float
    ci: tuple[float, float]
    confidence: float
    max_distance: float | None
    mean_distance: float | None
    non_finite: int = 0
    note: str | None = None


def output_distances(
    deployed: npt.ArrayLike, reference: npt.ArrayLike, distance: Distance, k: int = 5
) -> FloatArray:
    """One distance per sample between deployed and reference outputs.

    - ``max_abs``: ``max |d - r|``.
    - ``rel``: ``max |d - r| / max |r|``; when the reference is all zeros the distance is 0 if
      the deployed output is all zeros too, else infinity (no scale to be relative to).
    - ``cosine``: ``1 - cos(d, r)`` clipped to ``[0, 2]`` against rounding; two zero vectors are
      at distance 0, a zero vector and a non-zero one at infinity (no direction to compare).
    - ``topk``: ``1 - |top-k(d) ∩ top-k(r)| / k``; ties at the k-th place go to the lower index,
      so the sets are deterministic.
    - ``label``: 0 when arg-max labels agree, else 1. A sample of size 1 is taken as the label
      itself (a class id) or a binary probability and rounded to the nearest integer, so
      probability ``p`` means class 1 exactly when ``p > 0.5``.

    NaN anywhere in a sample's difference makes its numeric distance NaN (never identical).

    Raises:
        ValueError: on different shapes (both named), no samples, ``k < 1`` or ``k`` larger than
            the number of classes of a ``topk`` comparison.
    """
    d = np.asarray(deployed, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if d.shape != r.shape:
        raise ValueError(f"deployed output shape {d.shape} does not match reference {r.shape}")
    if d.ndim == 0 or d.shape[0] == 0:
        raise ValueError(f"outputs need a non-empty sample axis, got shape {d.shape}")
    d = d.reshape(d.shape[0], -1)
    r = r.reshape(r.shape[0], -1)
    match Distance(distance):
        case Distance.MAX_ABS:
            return np.asarray(np.max(np.abs(d - r), axis=1), dtype=np.float64)
        case Distance.REL:
            return _relative(d, r)
        case Distance.COSINE:
            return _cosine(d, r)
        case Distance.TOPK:
            return _topk(d, r, k)
        case Distance.LABEL:
            return np.asarray(_labels(d) != _labels(r), dtype=np.float64)


def semantic_preservation(
    deployed: npt.ArrayLike,
    reference: npt.ArrayLike,
    spec: SemanticPreservationSpec,
    confidence: float,
) -> SemanticPreservationResult:
    """Ratio of identical outputs with its exact (Clopper-Pearson) confidence interval.

    ``deployed`` and ``reference`` are the outputs selected by ``spec.output``, samples first.
    """
    distances = output_distances(deployed, reference, spec.distance, spec.k)
    n = int(distances.size)
    # NaN <= threshold is False, so NaN distances count as not identical.
    identical = int(np.count_nonzero(distances <= spec.threshold))
    finite = distances[np.isfinite(distances)]
    non_finite = n - int(finite.size)
    note = None
    if non_finite:
        note = (
            f"{non_finite} of {n} distances are infinite or NaN (counted as not identical); "
            "max_distance and mean_distance are over the finite ones"
        )
    return SemanticPreservationResult(
        distance=Distance(spec.distance).value,
        threshold=spec.threshold,
        k=spec.k if spec.distance == Distance.TOPK else None,
        n=n,
        identical=identical,
        ratio=identical / n,
        ci=proportion_ci(identical, n, confidence),
        confidence=confidence,
        max_distance=float(finite.max()) if finite.size else None,
        mean_distance=float(finite.mean()) if finite.size else None,
        non_finite=non_finite,
        note=note,
    )


def _relative(d: FloatArray, r: FloatArray) -> FloatArray:
    """``max|d - r| / max|r|`` per sample, with the all-zero reference handled."""
    diff = np.max(np.abs(d - r), axis=1)
    scale = np.max(np.abs(r), axis=1)
    out = np.full(diff.shape, math.inf)
    np.divide(diff, scale, out=out, where=scale > 0)
    out[(scale == 0) & (diff == 0)] = 0.0
    return out


def _cosine(d: FloatArray, r: FloatArray) -> FloatArray:
    """``1 - cosine similarity`` per sample, with zero vectors handled."""
    norm_d = np.linalg.norm(d, axis=1)
    norm_r = np.linalg.norm(r, axis=1)
    norms = norm_d * norm_r
    out = np.full(norms.shape, math.inf)
    dots = np.einsum("ij,ij->i", d, r)
    np.divide(dots, norms, out=out, where=norms > 0)
    out = np.where(norms > 0, np.clip(1.0 - out, 0.0, 2.0), out)
    out[(norm_d == 0) & (norm_r == 0)] = 0.0
    # NaN inputs give NaN norms: keep NaN (never identical) instead of inf.
    out[np.isnan(norms)] = math.nan
    return np.asarray(out, dtype=np.float64)


def _topk(d: FloatArray, r: FloatArray, k: int) -> FloatArray:
    """``1 - overlap / k`` of the k highest-scoring classes per sample."""
    n_classes = d.shape[1]
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > n_classes:
        raise ValueError(
            f"topk with k={k} needs outputs with at least {k} classes per sample, "
            f"got {n_classes}; lower semantic_preservation.k"
        )
    rows = np.arange(d.shape[0])[:, None]
    in_d = np.zeros(d.shape, dtype=np.bool_)
    in_r = np.zeros(r.shape, dtype=np.bool_)
    # Stable sort of negated scores: ties keep index order, so the sets are reproducible.
    in_d[rows, np.argsort(-d, axis=1, kind="stable")[:, :k]] = True
    in_r[rows, np.argsort(-r, axis=1, kind="stable")[:, :k]] = True
    overlap = np.count_nonzero(in_d & in_r, axis=1)
    return np.asarray(1.0 - overlap / k, dtype=np.float64)


def _labels(x: FloatArray) -> FloatArray:
    """Arg-max label per sample, or the rounded value for single-value samples."""
    if x.shape[1] == 1:
        return np.asarray(np.rint(x[:, 0]), dtype=np.float64)
    return np.asarray(np.argmax(x, axis=1), dtype=np.float64)
