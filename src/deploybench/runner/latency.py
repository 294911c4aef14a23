"""Latency, memory and throughput metrics from a target's raw repetitions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from deploybench.metrics.statistics import describe_samples, remove_outliers
from deploybench.metrics.validity import (
    RepetitionSummary,
    Validity,
    assess_validity,
    window_drift,
)
from deploybench.probes.base import ProbeReading
from deploybench.spec.measurement import MeasurementPlan
from deploybench.targets.base import RawRun

NS_PER_MS = 1e6
# Raw samples of the runtime-reported series sit beside the harness-timed ones in the run's
# raw_latencies artifact, under "runtime_repetition_<i>" (the main series: "repetition_<i>").
RUNTIME_PREFIX = "runtime_"
RUNTIME_NOTE = (
    "the runtime's own figure for each timed inference (e.g. OpenVINO's InferRequest.latency), "
    "read after the call; it excludes the Python call overhead that latency_ms includes"
)


def harness_samples(samples: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The harness-timed series of a raw_latencies archive, without the runtime-reported one."""
    return {k: v for k, v in samples.items() if not k.startswith(RUNTIME_PREFIX)}


def runtime_latency_metric(
    raw: RawRun, plan: MeasurementPlan
) -> tuple[dict[str, Any] | None, dict[str, np.ndarray]]:
    """Statistics of the runtime-reported series and its raw samples (ns) by repetition.

    ``(None, {})`` unless every repetition has one: a partial series would be summarised
    over other processes than latency_ms and could not be compared with it.
    """
    paths = [r.runtime_latencies_path for r in raw.repetitions]
    if not paths or any(p is None for p in paths):
        return None, {}
    groups_ns = {
        f"{RUNTIME_PREFIX}repetition_{r.index}": np.load(path)
        for r, path in zip(raw.repetitions, paths, strict=True)
        if path is not None
    }
    groups_ms = [values.astype(np.float64) / NS_PER_MS for values in groups_ns.values()]
    stats = describe_samples(groups_ms, confidence=plan.confidence, seed=plan.seed)
    metric = {
        **stats.model_dump(mode="json"),
        "provenance": "runtime-reported",
        "note": RUNTIME_NOTE,
    }
    return metric, groups_ns


def latency_metrics(
    raw: RawRun, plan: MeasurementPlan, model_size_bytes: int
) -> tuple[dict[str, Any], Validity, list[dict[str, Any]], dict[str, np.ndarray]]:
    """Statistics, validity, per-repetition summaries and the raw samples (ns) by repetition.

    The raw samples hold the harness-timed series (``repetition_<i>``) and, when every
    repetition has one, the runtime-reported series (``runtime_repetition_<i>``, summarised
    in ``runtime_latency_ms``); :func:`harness_samples` keeps the first only.
    """
    groups_ns = {f"repetition_{r.index}": np.load(r.latencies_path) for r in raw.repetitions}
    groups_ms = [values.astype(np.float64) / NS_PER_MS for values in groups_ns.values()]
    stats = describe_samples(groups_ms, confidence=plan.confidence, seed=plan.seed)
    kept, outliers = remove_outliers(groups_ms)
    filtered = describe_samples(
        [g for g in kept if g.size] or groups_ms, confidence=plan.confidence, seed=plan.seed
    )
    summaries: list[RepetitionSummary] = []
    per_rep: list[dict[str, Any]] = []
    for rep, values in zip(raw.repetitions, groups_ms, strict=True):
        summary = RepetitionSummary(
            index=rep.index,
            n=int(values.size),
            measured_seconds=rep.measured_ns / 1e9,
            stop_rule_met=rep.stop_rule_met,
            steady_state=rep.steady_state,
            warmup_runs=rep.warmup_runs,
            warmup_seconds=rep.warmup_ns / 1e9,
            median_ms=float(np.median(values)),
            drift=window_drift(values),
        )
        summaries.append(summary)
        per_rep.append(
            {
                **summary.model_dump(),
                "load_ms": rep.load_ns / NS_PER_MS,
                "first_inference_ms": rep.first_inference_ns / NS_PER_MS,
                "stopped_by": rep.stopped_by,
                "peak_rss_bytes": rep.peak_rss_bytes,
                "baseline_rss_bytes": rep.baseline_rss_bytes,
                "wall_seconds": rep.wall_seconds,
            }
        )
    env = raw.environment
    load = env.get("load_average")
    timer = env.get("timer", {})
    validity = assess_validity(
        stats,
        filtered,
        summaries,
        plan_min_iterations=plan.min_iterations or 1,
        plan_min_duration=plan.min_duration or 0.0,
        confidence=plan.confidence,
        # 0 when the target did not report its timer: the resolution check is then skipped
        # rather than run against a guessed resolution.
        timer_resolution_ns=float(timer.get("resolution_ns", 0.0)),
        load_avg_1m=float(load[0]) if isinstance(load, list) and load else None,
        cpu_count=env.get("cpu", {}).get("logical_cores"),
    )
    total_samples = sum(int(g.size) for g in groups_ms)
    total_seconds = sum(r.measured_ns for r in raw.repetitions) / 1e9
    rss = [r.peak_rss_bytes for r in raw.repetitions if r.peak_rss_bytes is not None]
    baseline = [r.baseline_rss_bytes for r in raw.repetitions if r.baseline_rss_bytes is not None]
    metrics: dict[str, Any] = {
        "latency_ms": {
            **stats.model_dump(mode="json"),
            "outliers": outliers.model_dump(mode="json"),
            "filtered": filtered.model_dump(mode="json"),
        },
        "first_inference_ms": float(
            np.median([r.first_inference_ns for r in raw.repetitions]) / NS_PER_MS
        ),
        "load_ms": float(np.median([r.load_ns for r in raw.repetitions]) / NS_PER_MS),
        # Single-stream throughput: samples per second of measured window.
        "throughput_per_s": total_samples * plan.batch_size / total_seconds
        if total_seconds > 0
        else None,
        "peak_rss_bytes": max(rss) if rss else None,
        "baseline_rss_bytes": int(np.median(baseline)) if baseline else None,
        "model_size_bytes": model_size_bytes,
    }
    runtime, runtime_ns = runtime_latency_metric(raw, plan)
    if runtime is not None:
        metrics["runtime_latency_ms"] = runtime
    metrics["probes"] = probe_metrics(raw)
    return metrics, validity, per_rep, {**groups_ns, **runtime_ns}


def probe_metrics(raw: RawRun) -> dict[str, Any]:
    """Each probe metric summarised over repetitions, or the reason it is unavailable."""
    by_metric: dict[str, list[ProbeReading]] = {}
    for rep in raw.repetitions:
        for reading in rep.probes:
            by_metric.setdefault(reading.metric, []).append(reading)
    summary: dict[str, Any] = {}
    for metric, readings in by_metric.items():
        values = [r.value for r in readings if r.value is not None]
        if not values:
            summary[metric] = {"unavailable": readings[0].unavailable or "no value"}
            continue
        summary[metric] = {
            "unit": readings[0].unit,
            "provenance": readings[0].provenance,
            "median": float(np.median(values)),
            "min": float(min(values)),
            "max": float(max(values)),
            "values": values,
        }
    return summary
