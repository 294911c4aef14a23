"""The demo campaign: open problems across ONNX Runtime configurations, stored and reported."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deploybench.paths import data_home
from deploybench.runner.experiment import Progress
from deploybench.runner.preparation import prepare_experiment
from deploybench.runner.record import RunRecord
from deploybench.services.runs import execute_and_keep, load_latencies
from deploybench.spec import Experiment, parse_experiment
from deploybench.store.sql import SqlResultStore

# Short windows keep the campaign under two minutes on 2 cores while every phase still runs:
# 3 fresh processes per configuration, each with warm-up and a stop rule.
DEMO_PLAN: dict[str, Any] = {
    "profile": "quick",
    "warmup_runs": 10,
    "warmup_seconds": 0.2,
    "min_iterations": 200,
    "min_duration": 0.5,
    "max_duration": 5.0,
    "repetitions": 3,
}

# (model, dataset, toolchain config, threads)
DEMO_CONFIGURATIONS: list[tuple[str, str, dict[str, Any], int]] = [
    ("digits-mlp", "digits", {"graph_optimization": "disabled"}, 1),
    ("digits-mlp", "digits", {"graph_optimization": "all"}, 1),
    ("digits-mlp", "digits", {"graph_optimization": "all"}, 2),
    ("digits-mlp", "digits", {"graph_optimization": "all", "quantization": "dynamic-int8"}, 1),
    ("digits-mlp", "digits", {"graph_optimization": "all", "quantization": "static-int8"}, 1),
    ("digits-cnn", "digits", {"graph_optimization": "all"}, 1),
    ("digits-cnn", "digits", {"graph_optimization": "all"}, 2),
    (
        "digits-cnn",
        "digits",
        {"graph_optimization": "all", "quantization": "static-int8", "per_channel": True},
        1,
    ),
    ("diabetes-linear", "diabetes", {"graph_optimization": "basic"}, 1),
]


def demo_experiments() -> list[Experiment]:
    """The campaign's experiments, named after their configuration."""
    experiments = []
    for model, dataset, config, threads in DEMO_CONFIGURATIONS:
        parts = [model, config.get("quantization", "fp32"), f"opt-{config['graph_optimization']}"]
        if config.get("per_channel"):
            parts.append("per-channel")
        parts.append(f"{threads}t")
        experiments.append(
            parse_experiment(
                {
                    "name": "-".join(parts),
                    "problem": {"model": f"zoo:{model}", "dataset": f"zoo:{dataset}"},
                    "toolchain": {"name": "onnxruntime", "config": config},
                    "environment": {"threads": threads},
                    "measurement": DEMO_PLAN,
                }
            )
        )
    return experiments


@dataclass(frozen=True)
class DemoResult:
    """The stored runs and the report written."""

    records: list[RunRecord]
    report: Path


def run_demo(
    store: SqlResultStore,
    on_experiment: Callable[[int, int, str], None] | None = None,
    progress: Progress | None = None,
    report_dir: Path | None = None,
) -> DemoResult:
    """Run, store and report the campaign; ``on_experiment(i, total, name)`` before each."""
    from deploybench.reports.html import write_html_report

    experiments = demo_experiments()
    prepared = [prepare_experiment(e) for e in experiments]  # everything checked up front
    records: list[RunRecord] = []
    for index, item in enumerate(prepared):
        if on_experiment is not None:
            on_experiment(index, len(prepared), item.experiment.name)
        records.append(execute_and_keep(item, store, progress).record)
    if on_experiment is not None:
        on_experiment(len(prepared), len(prepared), "report")
    latencies = {r.id: load_latencies(store, store.get_run(r.id)) for r in records}
    folder = report_dir or data_home() / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"demo-{datetime.now(UTC):%Y%m%dT%H%M%S}.html"
    write_html_report(
        [r.model_dump(mode="json") for r in records],
        latencies,
        path,
        title="deploybench demo: ONNX Runtime configurations on the open problems",
    )
    return DemoResult(records, path)
