"""Metrics and validity of a run on a simulator target (QEMU): counted, not timed.

A simulator's wall-clock time says nothing about the simulated core, so such targets return
no timed repetitions. Each boot instead reports an exact instruction count; the latency is an
estimate from a per-core cycle model (provenance ``simulated``), or unavailable where the
target has no such model. The verdict rests on determinism: every boot must count the same
instructions per inference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deploybench.metrics.statistics import describe_samples
from deploybench.metrics.validity import Validity
from deploybench.spec.measurement import MeasurementPlan
from deploybench.targets.base import RawRun

# Keys of RawRun.target_metrics the runner turns into statistics instead of copying.
SIMULATED_LATENCY_NS = "simulated_latency_ns"
LATENCY_UNAVAILABLE = "latency_unavailable"
BOOTS = "boots"


def simulated_metrics(
    raw: RawRun, plan: MeasurementPlan, model_size_bytes: int
) -> tuple[dict[str, Any], Validity, list[dict[str, Any]]]:
    """Metrics, validity and per-boot summaries of a simulator run."""
    reported = dict(raw.target_metrics)
    latencies = reported.pop(SIMULATED_LATENCY_NS, None)
    unavailable = reported.pop(LATENCY_UNAVAILABLE, None)
    boots: list[dict[str, Any]] = list(reported.get(BOOTS, []))
    metrics: dict[str, Any] = {**reported, "model_size_bytes": model_size_bytes}
    if latencies:
        values_ms = np.asarray(latencies, dtype=np.float64) / 1e6
        stats = describe_samples([values_ms], confidence=plan.confidence, seed=plan.seed)
        metrics["latency_ms"] = {
            **stats.model_dump(mode="json"),
            "provenance": "simulated",
            "note": "estimated from exact instruction counts with the core's cycle model "
            "(see cycles); one value per boot",
        }
        metrics["throughput_per_s"] = plan.batch_size * 1000.0 / float(np.median(values_ms))
    else:
        metrics["latency_ms"] = {
            "unavailable": str(unavailable or "the target reports no latency model")
        }
    return metrics, _determinism(boots), boots


def _determinism(boots: list[dict[str, Any]]) -> Validity:
    """Valid when every boot counted the same instructions per inference."""
    warnings = [
        "latency on a simulator is estimated from instruction counts, not measured; compare "
        "it with other simulated runs, not with measured ones"
    ]
    counts = [boot.get("per_inference") for boot in boots]
    if not boots or any(count is None for count in counts):
        return Validity(
            verdict="invalid",
            reasons=["no instruction count was reported for a boot"],
            recommendations=["check that QEMU loads the instruction-counting plugin"],
            warnings=warnings,
        )
    if len(set(counts)) > 1:
        return Validity(
            verdict="invalid",
            reasons=[f"instruction counts per inference differ between boots: {counts}"],
            recommendations=["the firmware is not deterministic: look for uninitialised data"],
            warnings=warnings,
        )
    if len(boots) < 2:
        warnings.append("one boot only: determinism was not cross-checked (repetitions: 2+)")
    return Validity(verdict="valid", reasons=[], recommendations=[], warnings=warnings)
