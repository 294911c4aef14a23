"""Pure metric functions: latency statistics, functional metrics, semantic preservation, validity.

Every result is a frozen pydantic model that serializes to a JSON dict for the run record.
A value that cannot be computed is None, with a field saying why; no number is made up.
"""

from deploybench.metrics.classification import (
    ClassificationMetrics,
    ClassMetrics,
    classification_metrics,
    scores_to_labels,
)
from deploybench.metrics.iou import SegmentationMetrics, box_iou, mask_iou
from deploybench.metrics.proportions import proportion_ci
from deploybench.metrics.regression import RegressionMetrics, regression_metrics
from deploybench.metrics.semantic import (
    SemanticPreservationResult,
    output_distances,
    semantic_preservation,
)
from deploybench.metrics.statistics import (
    ConfidenceIntervals,
    LatencyComparison,
    OutlierSummary,
    SampleStatistics,
    compare_latency,
    describe_samples,
    mad_outliers,
    min_samples_for_quantile,
    order_statistic_ci,
    remove_outliers,
)
from deploybench.metrics.validity import (
    RepetitionSummary,
    Validity,
    assess_validity,
    window_drift,
)

__all__ = [
    "ClassMetrics",
    "ClassificationMetrics",
    "ConfidenceIntervals",
    "LatencyComparison",
    "OutlierSummary",
    "RegressionMetrics",
    "RepetitionSummary",
    "SampleStatistics",
    "SegmentationMetrics",
    "SemanticPreservationResult",
    "Validity",
    "assess_validity",
    "box_iou",
    "classification_metrics",
    "compare_latency",
    "describe_samples",
    "mad_outliers",
    "mask_iou",
    "min_samples_for_quantile",
    "order_statistic_ci",
    "output_distances",
    "proportion_ci",
    "regression_metrics",
    "remove_outliers",
    "scores_to_labels",
    "semantic_preservation",
    "window_drift",
]
