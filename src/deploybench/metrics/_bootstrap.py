"""Two-stage (clustered) bootstrap of the mean and median of latency samples.

Latency samples from one process are not independent of each other: the process's memory
layout, CPU placement and frequency shift them all together. Resampling individual samples as
if they were independent would understate the uncertainty, so the bootstrap here is
two-stage: first the processes are resampled with replacement, then samples with replacement
within each chosen process (Davison & Hinkley 1997, §3.8). With one process it is the ordinary
bootstrap.

Drawing every resampled value is ``n_boot * n`` draws (120 million for 2,000 replicates of
3 x 20,000 samples), too slow and memory hungry. The method below gives the same
resampling distribution from far fewer draws:

1. Draw the process counts ``c_g`` (how often process ``g`` is chosen) from
   Multinomial(G, 1/G). Drawing ``c_g`` independent size-``n_g`` resamples of process ``g``
   is the same as drawing ``c_g * n_g`` values uniformly with replacement from it.
2. Cut the pooled sorted values into at most ``max_bins`` bins of consecutive ranks. How many
   of process ``g``'s draws fall in each bin is exactly Multinomial(c_g * n_g, share of ``g``'s
   values in the bin), and, given those counts, the draws inside a bin are still uniform over
   ``g``'s values in that bin.
3. Median (exact): the bin counts locate the bin that holds the median rank; only that bin's
   draws are then made one by one, which gives the exact order statistic.
4. Mean: each bin contributes ``count * bin mean`` plus the sum of its draws' deviations from
   the bin mean, which is drawn from the normal distribution with the exact variance
   ``count * within-bin variance`` (each bin holds hundreds of draws, so the normal is accurate,
   and the bootstrap variance of the mean is exactly preserved).

When the sample has no more values than ``max_bins``, every bin holds one value and both
statistics are exact with no approximation at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# 256 bins keep the multinomial draws cheap (n_boot x bins x processes binomials) while each
# bin of a 60,000-sample run still holds ~230 values, enough for the normal step of the mean.
DEFAULT_MAX_BINS = 256


@dataclass(frozen=True)
class BootstrapReplicates:
    """Bootstrap replicates of the pooled mean and median, one entry per replicate."""

    mean: FloatArray
    median: FloatArray


def clustered_bootstrap(
    groups: Sequence[FloatArray],
    n_boot: int,
    rng: np.random.Generator,
    max_bins: int = DEFAULT_MAX_BINS,
) -> BootstrapReplicates:
    """Two-stage bootstrap replicates of the pooled mean and median (see the module docstring).

    Args:
        groups: one non-empty 1-D array of samples per process.
        n_boot: number of bootstrap replicates.
        rng: source of randomness; the result is a pure function of its state.
        max_bins: bins of the binned resampling; a sample no larger than this is resampled
            exactly.
    """
    sizes = np.array([g.size for g in groups], dtype=np.int64)
    n_groups = sizes.size
    pooled = np.concatenate(groups)
    group_of = np.repeat(np.arange(n_groups), sizes)
    order = np.argsort(pooled, kind="stable")
    sorted_values = pooled[order]
    sorted_group = group_of[order]
    n_total = pooled.size
    n_bins = min(n_total, max_bins)
    bin_of = np.arange(n_total) * n_bins // n_total
    bin_start = np.searchsorted(bin_of, np.arange(n_bins + 1))

    # Per (process, bin): how many values, their mean and their (population) variance.
    cell = sorted_group * n_bins + bin_of
    cells = n_groups * n_bins
    counts = np.bincount(cell, minlength=cells).reshape(n_groups, n_bins)
    safe = np.maximum(counts, 1)
    sums = np.bincount(cell, weights=sorted_values, minlength=cells).reshape(n_groups, n_bins)
    cell_mean = sums / safe
    deviation = sorted_values - cell_mean.ravel()[cell]
    cell_var = (
        np.bincount(cell, weights=deviation**2, minlength=cells).reshape(n_groups, n_bins) / safe
    )

    if n_groups == 1:
        picks = np.ones((n_boot, 1), dtype=np.int64)
    else:
        picks = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)
    bin_counts = np.stack(
        [rng.multinomial(picks[:, g] * sizes[g], counts[g] / sizes[g]) for g in range(n_groups)]
    )  # (groups, replicates, bins)
    n_star = picks @ sizes

    total = np.einsum("grb,gb->r", bin_counts, cell_mean)
    variance = np.einsum("grb,gb->r", bin_counts, cell_var)
    means = (total + np.sqrt(variance) * rng.standard_normal(n_boot)) / n_star

    per_bin = bin_counts.sum(axis=0)
    cumulative = np.cumsum(per_bin, axis=1)
    lo_rank = (n_star - 1) // 2
    hi_rank = n_star // 2
    if n_bins == n_total:
        # One value per bin: the bin holding a rank is the value itself.
        lo = sorted_values[_bin_of_rank(cumulative, lo_rank)]
        hi = sorted_values[_bin_of_rank(cumulative, hi_rank)]
    else:
        lo, hi = _binned_medians(
            sorted_values, sorted_group, bin_start, bin_counts, cumulative, lo_rank, hi_rank, rng
        )
    return BootstrapReplicates(mean=means, median=(lo + hi) / 2.0)


def _bin_of_rank(cumulative: IntArray, rank: IntArray) -> IntArray:
    """Index of the bin holding the 0-based ``rank`` of each replicate."""
    return np.asarray((cumulative <= rank[:, None]).sum(axis=1), dtype=np.int64)


def _binned_medians(
    sorted_values: FloatArray,
    sorted_group: IntArray,
    bin_start: IntArray,
    bin_counts: IntArray,
    cumulative: IntArray,
    lo_rank: IntArray,
    hi_rank: IntArray,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray]:
    """Exact order statistics at ``lo_rank`` and ``hi_rank`` by drawing only their bins."""
    n_groups, n_boot, _ = bin_counts.shape
    lo_bin = _bin_of_rank(cumulative, lo_rank)
    hi_bin = _bin_of_rank(cumulative, hi_rank)
    rows = np.arange(n_boot)
    lo_before = cumulative[rows, lo_bin] - bin_counts.sum(axis=0)[rows, lo_bin]
    hi_before = cumulative[rows, hi_bin] - bin_counts.sum(axis=0)[rows, hi_bin]
    cache: dict[tuple[int, int], FloatArray] = {}

    def values_in(g: int, b: int) -> FloatArray:
        key = (g, b)
        if key not in cache:
            span = slice(bin_start[b], bin_start[b + 1])
            cache[key] = sorted_values[span][sorted_group[span] == g]
        return cache[key]

    def draw_bin(r: int, b: int) -> FloatArray:
        # Given the bin counts, draws inside the bin are uniform over each process's values.
        parts = []
        for g in range(n_groups):
            k = int(bin_counts[g, r, b])
            if k:
                pool = values_in(g, b)
                parts.append(pool[rng.integers(0, pool.size, size=k)])
        return np.sort(np.concatenate(parts))

    lo = np.empty(n_boot)
    hi = np.empty(n_boot)
    for r in range(n_boot):
        drawn = draw_bin(r, int(lo_bin[r]))
        lo[r] = drawn[lo_rank[r] - lo_before[r]]
        if hi_bin[r] != lo_bin[r]:
            # Each bin's draws are made once per replicate, so the two ranks stay consistent.
            drawn = draw_bin(r, int(hi_bin[r]))
        hi[r] = drawn[hi_rank[r] - hi_before[r]]
    return lo, hi
