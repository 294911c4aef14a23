"""Latency statistics checked against numpy/scipy and hand calculations."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from scipy import stats as sps

from deploybench.metrics import (
    compare_latency,
    describe_samples,
    mad_outliers,
    min_samples_for_quantile,
    order_statistic_ci,
    remove_outliers,
)
from deploybench.metrics._bootstrap import clustered_bootstrap


def _width(interval: tuple[float, float] | None) -> float:
    assert interval is not None
    return interval[1] - interval[0]


def test_point_statistics_match_numpy() -> None:
    rng = np.random.default_rng(1)
    groups = [rng.gamma(4.0, 0.5, 700), rng.gamma(4.0, 0.5, 500)]
    x = np.concatenate(groups)
    s = describe_samples(groups, confidence=0.95)
    assert s.n == 1200
    assert s.n_groups == 2
    assert s.min == x.min()
    assert s.max == x.max()
    assert s.mean == pytest.approx(x.mean())
    assert s.std == pytest.approx(x.std(ddof=1))
    assert s.cv == pytest.approx(x.std(ddof=1) / x.mean())
    assert s.median == np.median(x)
    assert s.mad == pytest.approx(np.median(np.abs(x - np.median(x))))
    assert [s.p90, s.p95, s.p99] == pytest.approx(np.percentile(x, [90, 95, 99]))
    # 1,200 samples are too few to bound p99.9 at 95% (needs 2,995).
    assert s.p999 is None
    assert s.p999_unavailable is not None and "2995" in s.p999_unavailable


def test_p999_reported_with_enough_samples() -> None:
    x = np.random.default_rng(2).normal(10.0, 1.0, 5000)
    s = describe_samples([x], confidence=0.99, n_boot=200)
    assert s.p999 == pytest.approx(np.percentile(x, 99.9))
    assert s.p999_unavailable is None


def test_single_sample_has_no_intervals() -> None:
    s = describe_samples([np.array([3.0])], confidence=0.95)
    assert s.std == 0.0
    assert s.cv == 0.0
    assert s.ci.mean is None and s.ci.median is None and s.ci.p99 is None
    assert {"mean", "median", "p90", "p95", "p99"} <= s.ci.unavailable.keys()


def test_result_is_json_and_frozen() -> None:
    s = describe_samples([np.arange(1.0, 101.0)], confidence=0.95, n_boot=100)
    data = json.loads(s.model_dump_json())
    assert data["ci"]["median"] == list(s.ci.median or ())
    with pytest.raises(ValueError):
        s.n = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "groups",
    [[], [np.array([])], [np.array([1.0, np.nan])], [np.ones((2, 2))]],
)
def test_bad_input_raises(groups: list[np.ndarray]) -> None:
    with pytest.raises(ValueError):
        describe_samples(groups, confidence=0.95)


def test_bootstrap_ci_contains_true_mean_and_narrows_with_n() -> None:
    rng = np.random.default_rng(3)
    small = describe_samples([rng.normal(5.0, 1.0, 400)], confidence=0.99)
    large = describe_samples([rng.normal(5.0, 1.0, 20000)], confidence=0.99)
    for s in (small, large):
        assert s.ci.mean is not None and s.ci.mean[0] < 5.0 < s.ci.mean[1]
        assert s.ci.median is not None and s.ci.median[0] < 5.0 < s.ci.median[1]
    assert _width(large.ci.mean) < _width(small.ci.mean) / 3
    # The width of a normal-theory interval: 2 * 2.576 * sigma / sqrt(n).
    assert _width(large.ci.mean) == pytest.approx(2 * 2.576 / np.sqrt(20000), rel=0.1)


def test_deterministic_for_a_seed() -> None:
    x = [np.random.default_rng(4).exponential(1.0, 3000) for _ in range(2)]
    first = describe_samples(x, 0.95, seed=7, n_boot=300)
    assert first == describe_samples(x, 0.95, seed=7, n_boot=300)
    assert first.ci != describe_samples(x, 0.95, seed=8, n_boot=300).ci


def test_clustered_bootstrap_is_wider_when_processes_differ() -> None:
    rng = np.random.default_rng(5)
    groups = [rng.normal(10.0 + shift, 1.0, 2000) for shift in (0.0, 0.5, 1.0, 1.5)]
    clustered = describe_samples(groups, confidence=0.95)
    naive = describe_samples([np.concatenate(groups)], confidence=0.95)
    assert _width(clustered.ci.mean) > 3 * _width(naive.ci.mean)
    assert _width(clustered.ci.median) > 3 * _width(naive.ci.median)


def _brute_force_bootstrap(
    groups: list[np.ndarray], n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Two-stage bootstrap drawing every value: processes, then samples within each."""
    means, medians = np.empty(n_boot), np.empty(n_boot)
    for r in range(n_boot):
        chosen = rng.integers(0, len(groups), len(groups))
        sample = np.concatenate(
            [groups[g][rng.integers(0, groups[g].size, groups[g].size)] for g in chosen]
        )
        means[r], medians[r] = sample.mean(), np.median(sample)
    return means, medians


def test_binned_bootstrap_matches_brute_force() -> None:
    # The binned resampling must give the same replicate distribution as drawing every value
    # (checked to agree at 20,000 replicates; the tolerance covers Monte Carlo noise at 2,000).
    rng = np.random.default_rng(6)
    groups = [rng.lognormal(0.0, 0.3, 600) + 0.05 * g for g in range(3)]
    binned = clustered_bootstrap(groups, 2000, np.random.default_rng(0), max_bins=32)
    means, medians = _brute_force_bootstrap(groups, 2000, np.random.default_rng(1))
    for fast, slow in ((binned.mean, means), (binned.median, medians)):
        assert np.quantile(fast, [0.025, 0.5, 0.975]) == pytest.approx(
            np.quantile(slow, [0.025, 0.5, 0.975]), abs=0.3 * slow.std()
        )
        assert fast.std() == pytest.approx(slow.std(), rel=0.1)


def test_single_group_exact_path_equals_ordinary_bootstrap_median() -> None:
    # With one value per bin the median replicates are actual order statistics of the sample.
    x = np.arange(1.0, 52.0)
    boot = clustered_bootstrap([x], 500, np.random.default_rng(0))
    assert np.all(np.isin(boot.median, x))


def test_fast_enough_for_three_by_twenty_thousand() -> None:
    rng = np.random.default_rng(7)
    groups = [rng.lognormal(0.0, 0.3, 20000) for _ in range(3)]
    start = time.perf_counter()
    describe_samples(groups, confidence=0.99)
    assert time.perf_counter() - start < 2.0


def test_min_samples_for_quantile() -> None:
    assert min_samples_for_quantile(0.90, 0.99) == 44
    assert min_samples_for_quantile(0.99, 0.99) == 459
    assert min_samples_for_quantile(0.5, 0.75) == 2  # 0.5**2 = 0.25 exactly
    with pytest.raises(ValueError):
        min_samples_for_quantile(1.0, 0.99)


def test_order_statistic_ci_median_by_hand() -> None:
    # n = 20, 95%: P(K <= 5) = 0.0207 <= 0.025 < P(K <= 6) = 0.0577, so [x_(6), x_(15)].
    x = np.arange(1.0, 21.0)
    assert sps.binom.cdf(5, 20, 0.5) <= 0.025 < sps.binom.cdf(6, 20, 0.5)
    assert order_statistic_ci(x, 0.5, 0.95) == (6.0, 15.0)


def test_order_statistic_ci_exists_from_min_samples() -> None:
    # Consistent with min_samples_for_quantile: the maximum becomes the upper end.
    assert order_statistic_ci(np.arange(1.0, 459.0), 0.99, 0.99) is None
    interval = order_statistic_ci(np.arange(1.0, 460.0), 0.99, 0.99)
    assert interval is not None and interval[1] == 459.0
    low = interval[0]
    # Coverage P(l <= K <= n - 1) of the returned order statistics is at least 99%.
    coverage = sps.binom.cdf(458, 459, 0.99) - sps.binom.cdf(low - 2, 459, 0.99)
    assert coverage >= 0.99


def test_order_statistic_ci_lower_extreme() -> None:
    # q = 0.1, n = 9, 50%: P(K = 0) = 0.387 > 0.25, so x_(1) is the lower end and the upper end
    # is the smallest u with P(1 <= K <= u - 1) >= 0.5: u = 3.
    assert order_statistic_ci(np.arange(1.0, 10.0), 0.1, 0.5) == (1.0, 3.0)


def test_quantile_cis_contain_percentiles() -> None:
    x = np.random.default_rng(8).exponential(2.0, 5000)
    s = describe_samples([x], confidence=0.99, n_boot=200)
    for name in ("p90", "p95", "p99"):
        interval = getattr(s.ci, name)
        assert interval[0] <= getattr(s, name) <= interval[1]
        assert interval[0] <= sps.expon.ppf(float(name[1:]) / 100, scale=2.0) <= interval[1]


def test_quantile_ci_none_when_too_few() -> None:
    s = describe_samples([np.arange(1.0, 41.0)], confidence=0.99, n_boot=100)
    assert s.ci.p90 is None and s.ci.p99 is None
    assert "p99" in s.ci.unavailable


def test_mad_outliers_hand_made() -> None:
    x = np.array([10.0, 10.5, 9.5, 10.0, 10.2, 9.8, 30.0, 10.1])
    # median 10.05, MAD 0.2: z(30) = 0.6745 * 19.95 / 0.2 = 67 flagged, z(9.5) = 1.85 not.
    mask = mad_outliers(x)
    assert mask.tolist() == [False, False, False, False, False, False, True, False]
    assert mad_outliers(x, threshold=1.5)[2]


def test_mad_outliers_zero_mad_flags_nothing() -> None:
    x = np.array([5.0, 5.0, 5.0, 5.0, 9.0])
    assert not mad_outliers(x).any()


def test_remove_outliers_per_group() -> None:
    groups = [np.r_[np.full(9, 1.0) + np.arange(9) * 0.01, 50.0], np.arange(3.0, 8.0)]
    kept, summary = remove_outliers(groups)
    assert [g.size for g in kept] == [9, 5]
    assert summary.count == 1 and summary.fraction == pytest.approx(1 / 15)
    assert summary.method == "mad"


def test_compare_latency_detects_2x_slowdown() -> None:
    rng = np.random.default_rng(9)
    a = [rng.lognormal(0.0, 0.1, 3000) for _ in range(3)]
    b = [2.0 * rng.lognormal(0.0, 0.1, 3000) for _ in range(3)]
    c = compare_latency(a, b, confidence=0.99, seed=0)
    assert c.ratio == pytest.approx(2.0, rel=0.02)
    assert c.ratio is not None and c.ratio_ci is not None
    assert c.ratio_ci[0] < c.ratio < c.ratio_ci[1]
    assert c.ratio_ci[0] > 1.5
    assert c.ratio_ci_excludes_one is True
    assert c.significant and c.p_value is not None and c.p_value < 1e-10
    assert (c.n_a, c.n_b) == (9000, 9000)


def test_compare_latency_identical_distributions_not_significant() -> None:
    rng = np.random.default_rng(10)
    a = [rng.lognormal(0.0, 0.1, 2000) for _ in range(3)]
    b = [rng.lognormal(0.0, 0.1, 2000) for _ in range(3)]
    c = compare_latency(a, b, confidence=0.99, seed=0)
    assert not c.significant
    assert c.p_value is not None and c.p_value > 0.01
    assert c.ratio_ci is not None and c.ratio_ci[0] < 1.0 < c.ratio_ci[1]
    assert c.p_value == pytest.approx(sps.mannwhitneyu(np.concatenate(a), np.concatenate(b)).pvalue)
