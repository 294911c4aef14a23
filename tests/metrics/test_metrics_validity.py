"""Validity verdict: a clean run is valid; each rule fires with its measured figure."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from deploybench.metrics import (
    RepetitionSummary,
    SampleStatistics,
    Validity,
    assess_validity,
    describe_samples,
    remove_outliers,
    window_drift,
)


def _clean_groups() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.normal(10.0, 0.2, 1000) for _ in range(3)]


def _reps(groups: list[np.ndarray], **update: Any) -> list[RepetitionSummary]:
    return [
        RepetitionSummary(
            index=i,
            n=g.size,
            measured_seconds=g.sum() / 1000,
            stop_rule_met=True,
            steady_state=True,
            warmup_runs=10,
            warmup_seconds=1.0,
            median_ms=float(np.median(g)),
            drift=window_drift(g),
        ).model_copy(update=update if i == 1 else {})
        for i, g in enumerate(groups)
    ]


def _assess(
    groups: list[np.ndarray] | None = None,
    reps: list[RepetitionSummary] | None = None,
    stats: SampleStatistics | None = None,
    filtered: SampleStatistics | None = None,
    **kwargs: Any,
) -> Validity:
    groups = groups if groups is not None else _clean_groups()
    if stats is None:
        stats = describe_samples(groups, 0.99, n_boot=50)
    if filtered is None:
        filtered = describe_samples(remove_outliers(groups)[0], 0.99, n_boot=50)
    args: dict[str, Any] = {
        "plan_min_iterations": 500,
        "plan_min_duration": 5.0,
        "confidence": 0.99,
        "timer_resolution_ns": 1.0,
        "load_avg_1m": 0.5,
        "cpu_count": 8,
    }
    args.update(kwargs)
    return assess_validity(stats, filtered, reps if reps is not None else _reps(groups), **args)


def test_clean_run_is_valid() -> None:
    v = _assess()
    assert v.verdict == "valid"
    assert v.reasons == [] and v.warnings == [] and v.recommendations == []


def test_stop_rule_not_met() -> None:
    groups = _clean_groups()
    reps = _reps(groups, stop_rule_met=False, n=120, measured_seconds=1.2)
    v = _assess(groups, reps)
    assert v.verdict == "invalid"
    assert "repetition 1" in v.reasons[0] and "120 iterations in 1.2 s" in v.reasons[0]
    assert ">= 500 iterations and >= 5 s" in v.reasons[0]
    # 500 iterations at 10 ms each = 5 s, +20% headroom.
    assert "raise max_duration to at least 6 s" in v.recommendations[0]


def test_high_filtered_cv_is_invalid() -> None:
    rng = np.random.default_rng(1)
    groups = [rng.normal(10.0, 1.5, 1000) for _ in range(3)]
    v = _assess(groups)
    assert v.verdict == "invalid"
    filtered = describe_samples(remove_outliers(groups)[0], 0.99, n_boot=50)
    assert filtered.cv is not None
    assert any("coefficient of variation" in r and f"{filtered.cv:.1%}" in r for r in v.reasons)
    assert any("environment.cpu_affinity" in r for r in v.recommendations)


def test_repetition_spread_is_invalid() -> None:
    rng = np.random.default_rng(2)
    groups = [rng.normal(mu, 0.1, 1000) for mu in (10.0, 10.2, 12.0)]
    v = _assess(groups)
    assert v.verdict == "invalid"
    (reason,) = [r for r in v.reasons if "per-repetition medians" in r]
    medians = [float(np.median(g)) for g in groups]
    assert f"{max(medians) / min(medians) - 1:.1%}" in reason
    assert "repetition 0" in reason and "repetition 2" in reason


def test_single_repetition_skips_spread_and_warns() -> None:
    groups = _clean_groups()[:1]
    v = _assess(groups)
    assert v.verdict == "valid"
    assert v.warnings == ["only 1 repetition(s) (< 3): process-to-process variance is unknown"]
    assert "run with repetitions=3 or more" in v.recommendations


def test_too_few_samples_for_p90_and_p99() -> None:
    rng = np.random.default_rng(3)
    groups = [rng.normal(10.0, 0.2, 10) for _ in range(3)]
    v = _assess(groups, plan_min_iterations=10)
    assert v.verdict == "valid"
    assert any("30 samples" in w and "p90" in w and "44" in w for w in v.warnings)
    assert any("p99" in w and "459" in w for w in v.warnings)
    assert "raise min_iterations to 153 so that 3 repetition(s) give >= 459 samples" in (
        v.recommendations
    )


def test_only_p99_short() -> None:
    rng = np.random.default_rng(4)
    groups = [rng.normal(10.0, 0.2, 100) for _ in range(3)]
    v = _assess(groups, plan_min_iterations=100)
    assert [w for w in v.warnings if "too few" in w] == [
        "300 samples are too few for a 0.99-confidence bound on p99 (needs >= 459)"
    ]


def test_warmup_not_steady() -> None:
    groups = _clean_groups()
    v = _assess(groups, _reps(groups, steady_state=False, warmup_runs=12, warmup_seconds=1.5))
    assert v.verdict == "valid"
    assert v.warnings == [
        "repetition 1 did not reach a steady state during warm-up (12 runs, 1.5 s)"
    ]
    assert v.recommendations == ["raise warmup_seconds to 3 s"]


def test_drift() -> None:
    x = np.r_[np.full(50, 10.0), np.full(50, 10.4), np.full(100, 11.0)]
    assert window_drift(x) == pytest.approx(0.1)
    assert window_drift(x[:7]) is None
    groups = _clean_groups()
    v = _assess(groups, _reps(groups, drift=0.1))
    assert v.verdict == "valid"
    assert any("repetition 1 drifted +10.0%" in w for w in v.warnings)


def test_extremes_far_from_mean() -> None:
    groups = _clean_groups()
    groups[0] = np.r_[groups[0], 30.0]
    v = _assess(groups)
    assert v.verdict == "valid"
    assert any(w.startswith("maximum 30 ms is 200% above the mean") for w in v.warnings)
    groups = _clean_groups()
    groups[0] = np.r_[groups[0], 1.0]
    assert any(w.startswith("minimum 1 ms is 90% below") for w in _assess(groups).warnings)


def test_timer_resolution() -> None:
    v = _assess(timer_resolution_ns=20000.0)  # 1000 ticks = 20 ms > median 10 ms
    assert any("below 1000x the timer resolution (20000 ns = 20 ms)" in w for w in v.warnings)
    assert "raise batch_size so that one timed call lasts >= 20 ms" in v.recommendations


def test_outlier_fraction() -> None:
    groups = _clean_groups()
    stats = describe_samples(groups, 0.99, n_boot=50)
    filtered = describe_samples([g[:900] for g in groups], 0.99, n_boot=50)
    v = _assess(groups, stats=stats, filtered=filtered)
    assert any("300 of 3000 samples (10.0%) are outliers" in w for w in v.warnings)


def test_background_load() -> None:
    v = _assess(load_avg_1m=7.5, cpu_count=8)
    assert v.verdict == "valid"
    assert v.warnings == [
        "1-minute load average 7.50 exceeds cpu_count - 1 = 7: other work competed for the CPUs"
    ]
    assert _assess(load_avg_1m=None, cpu_count=8).warnings == []


def test_empty_repetitions_rejected() -> None:
    groups = _clean_groups()
    stats = describe_samples(groups, 0.99, n_boot=50)
    with pytest.raises(ValueError):
        assess_validity(stats, stats, [], 500, 5.0, 0.99, 1.0, None, None)
