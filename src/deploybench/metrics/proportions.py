"""Confidence intervals of proportions (accuracy, semantic preservation ratio)."""

from __future__ import annotations

from scipy import stats


def proportion_ci(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """Exact Clopper-Pearson interval of ``successes / n`` at the given confidence level.

    Exact rather than Wilson or normal because ratios near 1 (e.g. 998/1000 identical outputs)
    are the common case here, where normal intervals overshoot 1 and undercover.

    Raises:
        ValueError: when ``n`` is 0 (no proportion to estimate), ``successes`` is outside
            ``[0, n]`` or ``confidence`` is outside ``(0, 1)``.
    """
    if n <= 0:
        raise ValueError(f"a proportion needs at least one trial, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n={n}], got {successes}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    interval = stats.binomtest(successes, n).proportion_ci(
        confidence_level=confidence, method="exact"
    )
    return float(interval.low), float(interval.high)
