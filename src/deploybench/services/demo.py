"""The demo campaign: open problems across ONNX Runtime configurations, stored and reported."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploybench.paths import data_home
from deploybench.runner.experiment import Progress
from deploybench.runner.latency import harness_samples
from deploybench.runner.preparation import prepare_experiment
from deploybench.runner.record import RunRecord
from deploybench.services.runs import execute_and_keep, load_latencies
from deploybench.spec import Experiment, parse_experiment
from deploybench.store.sql import SqlResultStore

if TYPE_CHECKING:
    from deploybench.client import Client

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
    """The stored runs, the report written, and jobs that ended without a run."""

    records: list[RunRecord]
    report: Path
    failed_jobs: list[dict[str, Any]] = field(default_factory=list)


def _write_report(
    records: list[RunRecord], latencies: dict[str, dict[str, Any]], report_dir: Path | None
) -> Path:
    from deploybench.reports.html import write_html_report

    folder = report_dir or data_home() / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"demo-{datetime.now(UTC):%Y%m%dT%H%M%S}.html"
    write_html_report(
        [r.model_dump(mode="json") for r in records],
        latencies,
        path,
        title="deploybench demo: ONNX Runtime configurations on the open problems",
    )
    return path


def run_demo_via_lab(
    client: Client,
    progress: bool = True,
    report_dir: Path | None = None,
    timeout: float | None = 900.0,
) -> DemoResult:
    """Submit the campaign to a lab server, watch it, fetch results and write the report."""
    import tempfile

    import numpy as np

    experiments = [e.model_dump(mode="json") for e in demo_experiments()]
    submission = client.submit(experiments, name="demo")
    jobs = client.wait(submission.campaign, progress=progress, timeout=timeout)
    records = [RunRecord.model_validate(client.run(job["run_id"])) for job in jobs if job["run_id"]]
    latencies: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="deploybench-demo-") as tmp:
        for record in records:
            digest = record.artifacts.get("raw_latencies")
            if digest is None:
                continue
            path = client.download_artifact(digest, Path(tmp) / f"{record.id}.npz")
            with np.load(path) as archive:
                latencies[record.id] = harness_samples(
                    {name: archive[name] for name in archive.files}
                )
    failed = [job for job in jobs if job["state"] != "succeeded" and not job["run_id"]]
    return DemoResult(records, _write_report(records, latencies, report_dir), failed)


def run_demo(
    store: SqlResultStore,
    on_experiment: Callable[[int, int, str], None] | None = None,
    progress: Progress | None = None,
    report_dir: Path | None = None,
) -> DemoResult:
    """Run, store and report the campaign in this process (no lab); ``on_experiment(i,
    total, name)`` before each."""
    experiments = demo_experiments()
    prepared = [prepare_experiment(e) for e in experiments]  # everything checked up front
    records: list[RunRecord] = []
    for index, item in enumerate(prepared):
        if on_experiment is not None:
            on_experiment(index, len(prepared), item.experiment.name)
        records.append(execute_and_keep(item, store, progress).record)
    if on_experiment is not None:
        on_experiment(len(prepared), len(prepared), "report")
    latencies: dict[str, dict[str, Any]] = {
        r.id: load_latencies(store, store.get_run(r.id)) for r in records
    }
    return DemoResult(records, _write_report(records, latencies, report_dir))
