"""Descriptive statistics of latency samples, with confidence intervals and comparisons.

Latencies are measured in several processes (repetitions); each process gives one 1-D array of
samples in milliseconds. Point statistics pool all samples. Intervals of the mean and median
come from a bootstrap clustered by process (:mod:`deploybench.metrics._bootstrap`), because
samples of one process share its memory layout, CPU placement and frequency and so are not
independent. Intervals of tail quantiles are distribution-free binomial order-statistic
intervals, reported only when the sample is large enough to support them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from deploybench.metrics._bootstrap import clustered_bootstrap
from deploybench.metrics._model import ResultModel

FloatArray = npt.NDArray[np.float64]
Interval = tuple[float, float]

# Consistency constant of the modified z-score (Iglewicz & Hoaglin 1993): MAD / 0.6745
# estimates the standard deviation of normal data.
_MAD_Z = 0.6745


class ConfidenceIntervals(ResultModel):
    """Confidence intervals of the location and tail statistics of a latency sample (ms).

    A field is None when the sample cannot support it; ``unavailable`` then says why.
    """

    level: float
    method: str
    mean: Interval | None
    median: Interval | None
    p90: Interval | None
    p95: Interval | None
    p99: Interval | None
    unavailable: dict[str, str] = {}


class SampleStatistics(ResultModel):
    """Summary of latency samples (ms) pooled over all measured processes."""

    n: int
    n_groups: int
    min: float
    max: float
    mean: float
    std: float
    cv: float | None
    cv_unavailable: str | None = None
    median: float
    mad: float
    p90: float
    p95: float
    p99: float
    p999: float | None
    p999_unavailable: str | None = None
    ci: ConfidenceIntervals


class OutlierSummary(ResultModel):
    """How many samples the outlier filter removed."""

    method: Literal["mad"] = "mad"
    threshold: float
    count: int
    fraction: float


class LatencyComparison(ResultModel):
    """Latency of B relative to A: ``ratio = median(B) / median(A)``; above 1 means B is slower."""

    n_a: int
    n_b: int
    median_a: float
    median_b: float
    ratio: float | None
    ratio_ci: Interval | None
    ratio_ci_excludes_one: bool | None
    unavailable: str | None = None
    confidence: float
    alpha: float
    p_value: float | None
    significant: bool


def min_samples_for_quantile(q: float, confidence: float) -> int:
    """Smallest n for which the sample maximum is an upper confidence bound of the q-quantile.

    The maximum of n samples lies below the q-quantile with probability ``q**n``, so it bounds
    the quantile at ``confidence`` once ``q**n <= 1 - confidence``, i.e.
    ``n >= ln(1 - confidence) / ln(q)``. Below that, no order statistic can bound the
    quantile, whatever the distribution.
    """
    _check_open_unit("q", q)
    _check_open_unit("confidence", confidence)
    # The small tolerance keeps an exact integer ratio from rounding up by floating-point error.
    return math.ceil(math.log1p(-confidence) / math.log(q) - 1e-9)


def order_statistic_ci(
    sorted_samples: npt.ArrayLike, q: float, confidence: float
) -> Interval | None:
    """Distribution-free confidence interval of the q-quantile from order statistics.

    The number K of samples below the true quantile is Binomial(n, q), so the interval
    ``[x_(l), x_(u)]`` (1-based order statistics) covers the quantile with probability
    ``P(l <= K <= u - 1)``. The interval is equal-tailed (``alpha/2`` per side) when both ends
    fit in the sample; near the sample extremes the unused tail probability moves to the other
    side, so an interval exists exactly when ``[x_(1), x_(n)]`` covers with probability
    ``>= confidence``. Returns None when it does not (too few samples).

    Args:
        sorted_samples: 1-D samples in ascending order.
        q: quantile in (0, 1).
        confidence: coverage probability in (0, 1).
    """
    _check_open_unit("q", q)
    _check_open_unit("confidence", confidence)
    x = np.asarray(sorted_samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"sorted_samples must be 1-D, got shape {x.shape}")
    n = x.size
    if n == 0:
        return None
    alpha = 1.0 - confidence
    # cdf[j] = P(K <= j) for j = 0..n.
    cdf = stats.binom.cdf(np.arange(n + 1), n, q)
    if cdf[n - 1] - cdf[0] < confidence - 1e-12:
        # Even min..max covers with probability 1 - q**n - (1-q)**n < confidence.
        return None
    # Equal tails: largest l with P(K <= l-1) <= alpha/2 (0 if none), and smallest u <= n with
    # P(K >= u) = 1 - cdf[u-1] <= alpha/2 (n + 1 if none).
    lower = int(np.count_nonzero(cdf <= alpha / 2))
    upper_ok = 1.0 - cdf[:n] <= alpha / 2
    upper = int(np.argmax(upper_ok)) + 1 if upper_ok.any() else n + 1
    if upper > n:
        # The upper tail cannot stay within alpha/2: use x_(n) and take what is left below.
        upper = n
        lower = int(np.count_nonzero(cdf <= cdf[n - 1] - confidence + 1e-12))
    elif lower == 0:
        # The lower tail cannot stay within alpha/2: use x_(1) and take what is left above.
        lower = 1
        upper = int(np.argmax(cdf - cdf[0] >= confidence - 1e-12)) + 1
    return float(x[lower - 1]), float(x[upper - 1])


def mad_outliers(samples: npt.ArrayLike, threshold: float = 3.5) -> npt.NDArray[np.bool_]:
    """Mask of outliers by the modified z-score ``0.6745 * |x - median| / MAD > threshold``.

    The MAD, unlike the standard deviation, is not inflated by the outliers it is used to find.
    When MAD is 0 (more than half the samples equal the median, e.g. with a coarse timer),
    the sample carries no scale information and any cut-off would be arbitrary: nothing is
    flagged rather than discarding every sample that differs from the median.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"samples must be 1-D, got shape {x.shape}")
    if x.size == 0:
        return np.zeros(0, dtype=np.bool_)
    median = np.median(x)
    mad = float(stats.median_abs_deviation(x, scale=1.0))
    if mad == 0.0:
        return np.zeros(x.size, dtype=np.bool_)
    return np.asarray(_MAD_Z * np.abs(x - median) / mad > threshold)


def remove_outliers(
    groups: Sequence[npt.ArrayLike], threshold: float = 3.5
) -> tuple[list[FloatArray], OutlierSummary]:
    """Drop MAD outliers within each process and summarize how many went.

    Filtering is per process so that a process that is slower as a whole keeps its samples:
    process-to-process variance is a finding (see validity), not noise to be filtered away.
    """
    arrays = _as_groups(groups)
    kept = [g[~mad_outliers(g, threshold)] for g in arrays]
    total = sum(g.size for g in arrays)
    count = total - sum(g.size for g in kept)
    summary = OutlierSummary(threshold=threshold, count=count, fraction=count / total)
    return kept, summary


def describe_samples(
    groups: Sequence[npt.ArrayLike], confidence: float, seed: int = 0, n_boot: int = 2000
) -> SampleStatistics:
    """Point statistics of the pooled samples with confidence intervals.

    Args:
        groups: one 1-D array of latencies (ms) per measured process.
        confidence: confidence level of every interval, in (0, 1).
        seed: seed of the bootstrap; the result is deterministic for a given seed.
        n_boot: bootstrap replicates.

    Raises:
        ValueError: on no groups, an empty or non-1-D group, or non-finite values.
    """
    _check_open_unit("confidence", confidence)
    arrays = _as_groups(groups)
    x = np.sort(np.concatenate(arrays))
    n = x.size
    mean = float(np.mean(x))
    std = float(np.std(x, ddof=1)) if n > 1 else 0.0
    cv: float | None = std / mean if mean != 0.0 else None
    p90, p95, p99, p999 = (float(v) for v in np.percentile(x, [90.0, 95.0, 99.0, 99.9]))
    need_p999 = min_samples_for_quantile(0.999, confidence)
    return SampleStatistics(
        n=n,
        n_groups=len(arrays),
        min=float(x[0]),
        max=float(x[-1]),
        mean=mean,
        std=std,
        cv=cv,
        cv_unavailable=None if cv is not None else "mean is 0: coefficient of variation undefined",
        median=float(np.median(x)),
        mad=float(stats.median_abs_deviation(x, scale=1.0)),
        p90=p90,
        p95=p95,
        p99=p99,
        p999=p999 if n >= need_p999 else None,
        p999_unavailable=(
            None
            if n >= need_p999
            else f"{n} samples; p99.9 needs >= {need_p999} at confidence {confidence}"
        ),
        ci=_intervals(arrays, x, confidence, seed, n_boot),
    )


def compare_latency(
    a_groups: Sequence[npt.ArrayLike],
    b_groups: Sequence[npt.ArrayLike],
    confidence: float,
    seed: int = 0,
    n_boot: int = 2000,
) -> LatencyComparison:
    """Compare latency B against baseline A.

    ``ratio = median(B) / median(A)`` with a percentile interval from independent clustered
    bootstraps of A and B. ``significant`` is the two-sided Mann-Whitney U test on the pooled
    samples at ``alpha = 1 - confidence``. Mann-Whitney treats samples as independent, so with
    large process-to-process variance it can call a difference significant that the clustered
    ``ratio_ci`` does not exclude 1; ``ratio_ci_excludes_one`` records the clustered verdict.
    """
    _check_open_unit("confidence", confidence)
    a_arrays, b_arrays = _as_groups(a_groups), _as_groups(b_groups)
    a, b = np.concatenate(a_arrays), np.concatenate(b_arrays)
    alpha = 1.0 - confidence
    median_a, median_b = float(np.median(a)), float(np.median(b))
    rng = np.random.default_rng(seed)
    boot_a = clustered_bootstrap(a_arrays, n_boot, rng).median
    boot_b = clustered_bootstrap(b_arrays, n_boot, rng).median
    ratio: float | None = None
    ratio_ci: Interval | None = None
    unavailable: str | None = None
    if median_a <= 0.0 or np.any(boot_a <= 0.0):
        unavailable = "median latency of A is not positive: ratio undefined"
    else:
        ratio = median_b / median_a
        ratio_ci = _percentile_interval(boot_b / boot_a, confidence)
    p_value = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    finite_p = p_value if math.isfinite(p_value) else None
    return LatencyComparison(
        n_a=a.size,
        n_b=b.size,
        median_a=median_a,
        median_b=median_b,
        ratio=ratio,
        ratio_ci=ratio_ci,
        ratio_ci_excludes_one=None if ratio_ci is None else not ratio_ci[0] <= 1.0 <= ratio_ci[1],
        unavailable=unavailable,
        confidence=confidence,
        alpha=alpha,
        p_value=finite_p,
        significant=finite_p is not None and finite_p < alpha,
    )


def _intervals(
    arrays: list[FloatArray], sorted_x: FloatArray, confidence: float, seed: int, n_boot: int
) -> ConfidenceIntervals:
    """Bootstrap intervals of mean and median, order-statistic intervals of the tails."""
    unavailable: dict[str, str] = {}
    mean_ci: Interval | None = None
    median_ci: Interval | None = None
    if sorted_x.size < 2:
        reason = "a single sample has no sampling distribution to bootstrap"
        unavailable["mean"] = unavailable["median"] = reason
    else:
        boot = clustered_bootstrap(arrays, n_boot, np.random.default_rng(seed))
        mean_ci = _percentile_interval(boot.mean, confidence)
        median_ci = _percentile_interval(boot.median, confidence)
    tails: dict[str, Interval | None] = {}
    for name, q in (("p90", 0.90), ("p95", 0.95), ("p99", 0.99)):
        tails[name] = order_statistic_ci(sorted_x, q, confidence)
        if tails[name] is None:
            unavailable[name] = (
                f"{sorted_x.size} samples are too few for a {confidence:g} interval of {name}"
            )
    kind = "clustered by process" if len(arrays) > 1 else "ordinary"
    return ConfidenceIntervals(
        level=confidence,
        method=(
            f"mean, median: {kind} percentile bootstrap ({n_boot} replicates, seed {seed}); "
            "quantiles: binomial order statistics"
        ),
        mean=mean_ci,
        median=median_ci,
        p90=tails["p90"],
        p95=tails["p95"],
        p99=tails["p99"],
        unavailable=unavailable,
    )


def _percentile_interval(replicates: FloatArray, confidence: float) -> Interval:
    """Equal-tailed percentile interval of bootstrap replicates."""
    alpha = 1.0 - confidence
    low, high = np.quantile(replicates, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def _as_groups(groups: Sequence[npt.ArrayLike]) -> list[FloatArray]:
    """Validate per-process samples: at least one group, each 1-D, non-empty and finite."""
    if len(groups) == 0:
        raise ValueError("no sample groups given")
    arrays = [np.asarray(g, dtype=np.float64) for g in groups]
    for i, g in enumerate(arrays):
        if g.ndim != 1:
            raise ValueError(f"group {i} must be 1-D, got shape {g.shape}")
        if g.size == 0:
            raise ValueError(f"group {i} is empty")
        if not np.all(np.isfinite(g)):
            raise ValueError(f"group {i} contains non-finite values")
    return arrays


def _check_open_unit(name: str, value: float) -> None:
    """Reject probabilities outside the open interval (0, 1)."""
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value}")
