"""Semantic preservation: hand-computed distances and ratios for every distance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deploybench.metrics import output_distances, semantic_preservation
from deploybench.spec import Distance, SemanticPreservationSpec


def _spec(distance: Distance, threshold: float, k: int = 5) -> SemanticPreservationSpec:
    return SemanticPreservationSpec(distance=distance, threshold=threshold, k=k)


def test_label_agreement_three_of_four() -> None:
    reference = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    deployed = np.array([[0.8, 0.2], [0.1, 0.9], [0.4, 0.6], [0.2, 0.8]])
    assert output_distances(deployed, reference, Distance.LABEL).tolist() == [0, 0, 1, 0]
    result = semantic_preservation(deployed, reference, _spec(Distance.LABEL, 0.0), 0.95)
    assert result.ratio == 0.75
    assert (result.n, result.identical) == (4, 3)
    assert 0.0 <= result.ci[0] < 0.75 < result.ci[1] <= 1.0
    assert result.distance == "label"
    assert result.k is None


def test_label_of_single_value_outputs() -> None:
    # Class ids or binary probabilities: rounded, so p > 0.5 means class 1.
    deployed = np.array([3.0, 0.7, 0.2, 0.5])
    reference = np.array([3.0, 0.9, 0.6, 0.4])
    assert output_distances(deployed, reference, Distance.LABEL).tolist() == [0, 0, 1, 0]


def test_max_abs_thresholds_below_and_above() -> None:
    reference = np.zeros((3, 2, 2))
    deployed = reference.copy()
    deployed[0, 0, 0] = 0.01
    deployed[1, 1, 1] = -0.03
    deployed[2] = 0.002
    distances = output_distances(deployed, reference, Distance.MAX_ABS)
    assert distances == pytest.approx([0.01, 0.03, 0.002])
    assert (
        semantic_preservation(deployed, reference, _spec(Distance.MAX_ABS, 0.005), 0.9).identical
        == 1
    )
    assert (
        semantic_preservation(deployed, reference, _spec(Distance.MAX_ABS, 0.02), 0.9).identical
        == 2
    )
    result = semantic_preservation(deployed, reference, _spec(Distance.MAX_ABS, 0.05), 0.9)
    assert result.ratio == 1.0 and result.ci[1] == 1.0 and result.ci[0] < 1.0
    assert result.max_distance == pytest.approx(0.03)
    assert result.mean_distance == pytest.approx(0.014)


def test_relative_distance_and_zero_reference() -> None:
    reference = np.array([[2.0, -4.0], [0.0, 0.0], [0.0, 0.0]])
    deployed = np.array([[2.2, -4.0], [0.0, 0.0], [0.0, 1e-9]])
    distances = output_distances(deployed, reference, Distance.REL)
    assert distances[0] == pytest.approx(0.2 / 4.0)
    assert distances[1] == 0.0
    assert distances[2] == np.inf
    result = semantic_preservation(deployed, reference, _spec(Distance.REL, 0.1), 0.95)
    assert result.identical == 2
    assert result.non_finite == 1 and result.note is not None
    assert result.max_distance == pytest.approx(0.05)
    json.loads(result.model_dump_json())  # no infinity leaks into the record


def test_cosine_distance() -> None:
    reference = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    deployed = np.array([[0.0, 3.0], [2.0, 2.0], [-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    distances = output_distances(deployed, reference, Distance.COSINE)
    assert distances[0] == pytest.approx(1.0)  # orthogonal
    assert distances[1] == pytest.approx(0.0, abs=1e-12)  # same direction, other length
    assert distances[2] == pytest.approx(2.0)  # opposite
    assert distances[3] == 0.0  # both zero
    assert distances[4] == np.inf  # no direction to compare with
    result = semantic_preservation(deployed, reference, _spec(Distance.COSINE, 0.01), 0.95)
    assert result.identical == 2


def test_topk_partial_overlap() -> None:
    reference = np.array([[5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    # Sample 0: top-3 {0, 1, 4} vs {0, 1, 2} -> overlap 2 -> 1 - 2/3. Sample 1: same set.
    deployed = np.array([[5.0, 4.0, 0.0, 0.0, 4.5], [0.0, 0.0, 3.0, 5.0, 4.0]])
    distances = output_distances(deployed, reference, Distance.TOPK, k=3)
    assert distances == pytest.approx([1 / 3, 0.0])
    result = semantic_preservation(deployed, reference, _spec(Distance.TOPK, 0.34, k=3), 0.95)
    assert result.identical == 2
    result = semantic_preservation(deployed, reference, _spec(Distance.TOPK, 0.3, k=3), 0.95)
    assert result.ratio == 0.5 and result.k == 3


def test_topk_k_larger_than_classes() -> None:
    with pytest.raises(ValueError, match="k=5 needs outputs with at least 5 classes"):
        output_distances(np.zeros((2, 3)), np.zeros((2, 3)), Distance.TOPK, k=5)


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        output_distances(np.zeros((2, 3)), np.zeros((2, 4)), Distance.MAX_ABS)


def test_nan_is_never_identical() -> None:
    deployed = np.array([[np.nan, 0.0], [0.0, 0.0]])
    reference = np.zeros((2, 2))
    result = semantic_preservation(deployed, reference, _spec(Distance.MAX_ABS, 1.0), 0.95)
    assert result.identical == 1 and result.non_finite == 1
