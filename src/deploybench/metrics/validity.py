"""Validity verdict of a latency measurement: is the figure trustworthy, and if not, why.

A measurement is *invalid* when its numbers cannot be trusted at all (the stop rule was not
met, or the latency was too unstable to summarize). *Warnings* flag weaknesses that leave the
figure usable but qualify it. Every reason and warning states the measured figure, and comes
with a concrete recommendation of what to change.

Thresholds follow the reference tools (notes/measurement-methodology.md): pyperf's checks of
the min/max against the mean and of the timer resolution, and a 10% coefficient of variation
as the limit of a stable measurement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from deploybench.metrics._model import ResultModel
from deploybench.metrics.statistics import SampleStatistics, min_samples_for_quantile

# Above 10% CV (outliers already removed) run-to-run noise swamps most optimizations measured.
MAX_CV = 0.10
# Medians of separate processes differing by more than 10% mean the process itself (memory
# layout, core placement) decides the result; one number cannot summarize it.
MAX_REPETITION_SPREAD = 0.10
# A 5% trend inside one measured window points at throttling or a warm-up that never ended.
MAX_DRIFT = 0.05
# pyperf's check: an extreme more than 50% from the mean means the sample is not homogeneous.
MAX_EXTREME_DEVIATION = 0.50
# pyperf's check: a measured time should span at least 1000 ticks of the clock.
MIN_TIMER_TICKS = 1000
# More than 5% outliers is no longer a few interrupts but a disturbed machine.
MAX_OUTLIER_FRACTION = 0.05
# With fewer processes the process-to-process variance cannot be estimated.
MIN_REPETITIONS = 3
# Below 8 samples a quarter of the window holds fewer than 2 samples: no usable median.
_MIN_DRIFT_SAMPLES = 8

_PIN = "pin to an idle core with environment.cpu_affinity"
_QUIET = "stop background work (builds, browsers, other benchmarks) while measuring"
_GOVERNOR = "fix the CPU frequency (performance governor, turbo boost off)"


class RepetitionSummary(ResultModel):
    """What one measured process (repetition) reported about its own run."""

    index: int
    n: int
    measured_seconds: float
    stop_rule_met: bool
    steady_state: bool
    warmup_runs: int
    warmup_seconds: float
    median_ms: float
    drift: float | None


class Validity(ResultModel):
    """Verdict of a latency measurement, with the reasons, warnings and what to do about them."""

    verdict: Literal["valid", "invalid"]
    reasons: list[str]
    recommendations: list[str]
    warnings: list[str]


def window_drift(samples: npt.ArrayLike) -> float | None:
    """Relative change of the median from the first to the last quarter of a measured window.

    ``(median(last quarter) - median(first quarter)) / median(first quarter)``, in measurement
    order; positive means the run slowed down. None with fewer than 8 samples or a first-quarter
    median of 0, where the figure would mean nothing.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"samples must be 1-D, got shape {x.shape}")
    if x.size < _MIN_DRIFT_SAMPLES:
        return None
    quarter = x.size // 4
    first = float(np.median(x[:quarter]))
    last = float(np.median(x[-quarter:]))
    if first == 0.0:
        return None
    return (last - first) / first


def assess_validity(
    stats: SampleStatistics,
    filtered: SampleStatistics,
    repetitions: Sequence[RepetitionSummary],
    plan_min_iterations: int,
    plan_min_duration: float,
    confidence: float,
    timer_resolution_ns: float,
    load_avg_1m: float | None,
    cpu_count: int | None,
) -> Validity:
    """Judge a latency measurement.

    Args:
        stats: statistics of all samples.
        filtered: statistics of the samples left after outlier removal.
        repetitions: one summary per measured process.
        plan_min_iterations: stop rule: measured inferences each repetition needed.
        plan_min_duration: stop rule: measured seconds each repetition needed.
        confidence: confidence level of the reported intervals.
        timer_resolution_ns: resolution of the clock used for timing.
        load_avg_1m: 1-minute load average during the run, if known.
        cpu_count: CPUs of the machine, if known.

    Raises:
        ValueError: when ``repetitions`` is empty (nothing says how the samples were taken).
    """
    if not repetitions:
        raise ValueError("assess_validity needs at least one repetition summary")
    out = _Findings()
    _check_stop_rule(out, repetitions, plan_min_iterations, plan_min_duration)
    _check_stability(out, filtered, repetitions)
    _check_sample_size(out, stats, len(repetitions), plan_min_iterations, confidence)
    _check_warmup_and_drift(out, repetitions)
    _check_extremes(out, stats)
    _check_environment(out, stats, filtered, timer_resolution_ns, load_avg_1m, cpu_count)
    if len(repetitions) < MIN_REPETITIONS:
        out.warn(
            f"only {len(repetitions)} repetition(s) (< {MIN_REPETITIONS}): "
            "process-to-process variance is unknown",
            f"run with repetitions={MIN_REPETITIONS} or more",
        )
    return Validity(
        verdict="invalid" if out.reasons else "valid",
        reasons=out.reasons,
        recommendations=out.recommendations,
        warnings=out.warnings,
    )


class _Findings:
    """Collects reasons, warnings and de-duplicated recommendations in the order found."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.warnings: list[str] = []
        self.recommendations: list[str] = []

    def invalid(self, reason: str, *recommendations: str) -> None:
        """Record a reason that makes the measurement invalid."""
        self.reasons.append(reason)
        self.recommend(*recommendations)

    def warn(self, warning: str, *recommendations: str) -> None:
        """Record a warning that leaves the verdict unchanged."""
        self.warnings.append(warning)
        self.recommend(*recommendations)

    def recommend(self, *recommendations: str) -> None:
        """Add recommendations, once each: several findings often share the same remedy."""
        for text in recommendations:
            if text not in self.recommendations:
                self.recommendations.append(text)


def _check_stop_rule(
    out: _Findings,
    repetitions: Sequence[RepetitionSummary],
    min_iterations: int,
    min_duration: float,
) -> None:
    """INVALID: a repetition stopped (max_duration or max_iterations) before its stop rule."""
    for rep in repetitions:
        if rep.stop_rule_met:
            continue
        reason = (
            f"repetition {rep.index} stopped before its stop rule was met: {rep.n} iterations "
            f"in {rep.measured_seconds:.3g} s (needed >= {min_iterations} iterations and "
            f">= {min_duration:g} s)"
        )
        if rep.n > 0 and rep.measured_seconds > 0:
            # Time the stop rule would have taken at the observed rate, with 20% headroom.
            needed = max(min_duration, min_iterations * rep.measured_seconds / rep.n)
            advice = (
                f"raise max_duration to at least {math.ceil(needed * 1.2)} s "
                "(or lower min_iterations / min_duration)"
            )
        else:
            advice = "raise max_duration and timeout: the repetition measured nothing"
        out.invalid(reason, advice)


def _check_stability(
    out: _Findings, filtered: SampleStatistics, repetitions: Sequence[RepetitionSummary]
) -> None:
    """INVALID: noisy samples (filtered CV) or processes that disagree (median spread)."""
    if filtered.cv is not None and filtered.cv >= MAX_CV:
        out.invalid(
            f"latency is unstable: coefficient of variation of the outlier-filtered samples is "
            f"{filtered.cv:.1%} (limit {MAX_CV:.0%})",
            _PIN,
            _QUIET,
        )
    if len(repetitions) < 2:
        return
    slowest = max(repetitions, key=lambda r: r.median_ms)
    fastest = min(repetitions, key=lambda r: r.median_ms)
    if fastest.median_ms <= 0:
        return
    spread = slowest.median_ms / fastest.median_ms - 1.0
    if spread > MAX_REPETITION_SPREAD:
        out.invalid(
            f"per-repetition medians differ by {spread:.1%} (limit {MAX_REPETITION_SPREAD:.0%}): "
            f"{fastest.median_ms:.4g} ms in repetition {fastest.index} vs "
            f"{slowest.median_ms:.4g} ms in repetition {slowest.index}",
            _PIN,
            _GOVERNOR,
        )


def _check_sample_size(
    out: _Findings,
    stats: SampleStatistics,
    n_repetitions: int,
    plan_min_iterations: int,
    confidence: float,
) -> None:
    """WARNING: too few samples to bound p90 / p99 at the confidence level."""
    largest_need = 0
    for name, q in (("p90", 0.90), ("p99", 0.99)):
        need = min_samples_for_quantile(q, confidence)
        if stats.n < need:
            largest_need = max(largest_need, need)
            out.warnings.append(
                f"{stats.n} samples are too few for a {confidence:g}-confidence bound on {name} "
                f"(needs >= {need})"
            )
    if largest_need:
        per_repetition = math.ceil(largest_need / n_repetitions)
        if per_repetition > plan_min_iterations:
            out.recommend(
                f"raise min_iterations to {per_repetition} so that {n_repetitions} repetition(s) "
                f"give >= {largest_need} samples"
            )
        else:
            out.recommend(
                f"let every repetition meet its stop rule (min_iterations={plan_min_iterations})"
            )


def _check_warmup_and_drift(out: _Findings, repetitions: Sequence[RepetitionSummary]) -> None:
    """WARNING: warm-up never settled, or the measured window trends up or down."""
    unsettled = [r for r in repetitions if not r.steady_state]
    for rep in unsettled:
        out.warnings.append(
            f"repetition {rep.index} did not reach a steady state during warm-up "
            f"({rep.warmup_runs} runs, {rep.warmup_seconds:.3g} s)"
        )
    if unsettled:
        longest = max(r.warmup_seconds for r in unsettled)
        out.recommend(f"raise warmup_seconds to {max(1, math.ceil(2 * longest))} s")
    for rep in repetitions:
        if rep.drift is not None and abs(rep.drift) > MAX_DRIFT:
            out.warn(
                f"repetition {rep.index} drifted {rep.drift:+.1%} from the first to the last "
                f"quarter of its measured window (limit {MAX_DRIFT:.0%})",
                _GOVERNOR,
                _PIN,
            )


def _check_extremes(out: _Findings, stats: SampleStatistics) -> None:
    """WARNING (pyperf): the minimum or maximum is more than 50% away from the mean."""
    if stats.mean <= 0:
        return
    below = (stats.mean - stats.min) / stats.mean
    above = (stats.max - stats.mean) / stats.mean
    if below > MAX_EXTREME_DEVIATION:
        out.warn(
            f"minimum {stats.min:.4g} ms is {below:.0%} below the mean {stats.mean:.4g} ms "
            f"(limit {MAX_EXTREME_DEVIATION:.0%})",
            _PIN,
        )
    if above > MAX_EXTREME_DEVIATION:
        out.warn(
            f"maximum {stats.max:.4g} ms is {above:.0%} above the mean {stats.mean:.4g} ms "
            f"(limit {MAX_EXTREME_DEVIATION:.0%})",
            _PIN,
            _QUIET,
        )


def _check_environment(
    out: _Findings,
    stats: SampleStatistics,
    filtered: SampleStatistics,
    timer_resolution_ns: float,
    load_avg_1m: float | None,
    cpu_count: int | None,
) -> None:
    """WARNING: coarse timer, many outliers, or a loaded machine."""
    floor_ms = MIN_TIMER_TICKS * timer_resolution_ns / 1e6
    if timer_resolution_ns > 0 and stats.median < floor_ms:
        out.warn(
            f"median latency {stats.median:.4g} ms is below {MIN_TIMER_TICKS}x the timer "
            f"resolution ({timer_resolution_ns:g} ns = {floor_ms:.4g} ms)",
            f"raise batch_size so that one timed call lasts >= {floor_ms:.4g} ms",
        )
    removed = stats.n - filtered.n
    fraction = removed / stats.n
    if fraction > MAX_OUTLIER_FRACTION:
        out.warn(
            f"{removed} of {stats.n} samples ({fraction:.1%}) are outliers "
            f"(limit {MAX_OUTLIER_FRACTION:.0%})",
            _PIN,
            _QUIET,
        )
    if load_avg_1m is not None and cpu_count is not None and load_avg_1m > cpu_count - 1:
        out.warn(
            f"1-minute load average {load_avg_1m:.2f} exceeds cpu_count - 1 = {cpu_count - 1}: "
            "other work competed for the CPUs",
            _QUIET,
            _PIN,
        )
