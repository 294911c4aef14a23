"""Run one experiment end to end: prepare, build, reference run, measure, compute, record."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from deploybench import __version__
from deploybench.errors import RunError
from deploybench.problems.datasets import load_npz
from deploybench.runner.artifacts import ArtifactSet
from deploybench.runner.functional import (
    accuracy_metrics,
    default_semantic_spec,
    preservation_metrics,
    select_output,
)
from deploybench.runner.latency import latency_metrics
from deploybench.runner.preparation import (
    PreparedExperiment,
    ProblemFiles,
    prepare_experiment,
    reference_toolchain,
)
from deploybench.runner.record import RunErrorInfo, RunRecord, ValidityInfo
from deploybench.runner.simulated import simulated_metrics
from deploybench.spec.environment import EnvironmentSpec
from deploybench.spec.experiment import Experiment
from deploybench.targets.base import ExecutionRequest, Provenance, RawRun
from deploybench.targets.local import LocalCpuTarget
from deploybench.toolchains.base import Deployable, StepRecord
from deploybench.toolchains.pipeline import BuildError

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: phases resolve, build, reference, functional,
repetitions, metrics."""


@dataclass
class RunOutcome:
    """The record plus its artifact files (still in the work directory)."""

    record: RunRecord
    artifacts: ArtifactSet
    workdir: Path


def new_run_id() -> str:
    """Sortable, unique run id: UTC time then random hex."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class _RunBuilder:
    """Accumulates what a run produced so a failure at any phase still yields a record."""

    def __init__(self, prepared: PreparedExperiment, workdir: Path) -> None:
        self.prepared = prepared
        self.workdir = workdir
        self.artifacts = ArtifactSet(workdir)
        self.id = new_run_id()
        self.started = _now()
        self.steps: list[StepRecord] = []
        self.logs: list[str] = []
        self.metrics: dict[str, Any] = {}
        self.environment: dict[str, Any] = {}
        self.repetitions: list[dict[str, Any]] = []
        self.session: dict[str, Any] = {}
        self.reference: dict[str, Any] = {}
        plan = prepared.experiment.measurement.resolved()
        semantic = prepared.experiment.semantic_preservation or default_semantic_spec(
            prepared.problem.task
        )
        problem = prepared.experiment.problem.model_copy(update={"task": prepared.problem.task})
        self.experiment: Experiment = prepared.experiment.model_copy(
            update={"measurement": plan, "semantic_preservation": semantic, "problem": problem}
        )
        self.artifacts.add("model", prepared.problem.model_path)
        self.artifacts.add("dataset", prepared.problem.dataset_path)
        if prepared.problem.expected_outputs_path is not None:
            self.artifacts.add("expected_outputs", prepared.problem.expected_outputs_path)

    def collect_logs(self, raw: RawRun, label: str) -> None:
        paths = [r.log_path for r in raw.repetitions] + list(raw.logs)
        if raw.functional is not None:
            paths.insert(0, raw.functional.log_path)
        if raw.failure is not None and raw.failure.log_path is not None:
            paths.append(raw.failure.log_path)
        for path in dict.fromkeys(paths):
            if path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace")
                self.logs.append(f"==== {label}: {path.parent.name} ====\n{text}")

    def record(self, error: RunErrorInfo | None, validity: ValidityInfo) -> RunRecord:
        step_logs = [f"==== step {s.name} ({s.tool} {s.version}) ====\n{s.log}" for s in self.steps]
        self.artifacts.add_text("log", "run.log", "\n".join(step_logs + self.logs) + "\n")
        if self.environment:
            self.artifacts.add_json("environment", "environment.json", self.environment)
        problem = self.prepared.problem
        return RunRecord(
            id=self.id,
            experiment=self.experiment.model_dump(mode="json"),
            status="failed" if error else "succeeded",
            error=error,
            provenance=self.prepared.target_info.provenance.value,
            validity=validity,
            metrics=self.metrics,
            environment=self.environment,
            steps=self.steps,
            artifacts=self.artifacts.digests(),
            started_at=self.started,
            finished_at=_now(),
            deploybench_version=__version__,
            inputs={"model": problem.model_sha256, "dataset": problem.dataset_sha256},
            target=self.prepared.target_info.model_dump(mode="json"),
            findings=self.prepared.findings,
            repetitions=self.repetitions,
            session=self.session,
            reference=self.reference,
        )

    def failed(self, kind: str, message: str) -> RunRecord:
        return self.record(
            RunErrorInfo(kind=kind, message=message),
            ValidityInfo(
                verdict="invalid",
                reasons=[f"the run failed ({kind}): {message}"],
                recommendations=["read the run's log artifact, fix the cause and run again"],
            ),
        )


def _add_deployable(builder: _RunBuilder, deployable: Deployable, prefix: str) -> None:
    for item in deployable.files:
        builder.artifacts.add(f"{prefix}{item.role}", deployable.root / item.path)
    builder.artifacts.add(f"{prefix}manifest", deployable.root / "deployable.json")


def _reference_outputs(builder: _RunBuilder, functional_samples: int, progress: Progress) -> Path:
    """Run the input model with its original framework (fp32, no optimization) on the host."""
    prepared = builder.prepared
    toolchain = reference_toolchain(prepared.problem.model_format, prepared.toolchain)
    config = toolchain.reference_config()
    progress("reference", 0, 1)
    deployable = toolchain.build(prepared.problem, config, builder.workdir / "reference-build")
    raw = LocalCpuTarget().execute(
        ExecutionRequest(
            deployable=deployable,
            inputs_path=prepared.problem.dataset_path,
            environment=EnvironmentSpec(),
            plan=builder.experiment.measurement,
            functional_samples=functional_samples,
            timing=False,
            workdir=builder.workdir / "reference",
        )
    )
    builder.collect_logs(raw, "reference")
    builder.reference = {
        "toolchain": toolchain.name,
        "config": config.model_dump(mode="json"),
        "target": "local",
        "steps": [s.model_dump(mode="json") for s in deployable.steps],
    }
    if raw.failure is not None or raw.functional is None:
        message = raw.failure.message if raw.failure else "no outputs"
        raise RunError(f"the reference run failed: {message}")
    progress("reference", 1, 1)
    builder.artifacts.add("reference_outputs", raw.functional.outputs_path)
    return raw.functional.outputs_path


def _functional_metrics(builder: _RunBuilder, raw: RawRun, reference_path: Path) -> None:
    assert raw.functional is not None
    problem = builder.prepared.problem
    plan = builder.experiment.measurement
    spec = builder.experiment.semantic_preservation
    assert spec is not None
    deployed = load_npz(raw.functional.outputs_path)
    reference = load_npz(reference_path)
    chosen = select_output(deployed, problem.outputs, spec.output)
    builder.metrics.update(accuracy_metrics(problem, chosen, plan.confidence))
    builder.metrics["semantic_preservation"] = preservation_metrics(
        chosen, select_output(reference, problem.outputs, spec.output), spec, plan.confidence
    )
    ref_accuracy = accuracy_metrics(
        problem, select_output(reference, problem.outputs, spec.output), plan.confidence
    )
    builder.metrics["reference_accuracy"] = next(iter(ref_accuracy.values()))
    if problem.expected_outputs_path is not None:
        expected = load_npz(problem.expected_outputs_path)
        wanted = select_output(expected, problem.outputs, spec.output)[: chosen.shape[0]]
        builder.metrics["expected_outputs"] = preservation_metrics(
            chosen, wanted, spec, plan.confidence
        )


def execute_prepared(
    prepared: PreparedExperiment, workdir: Path, progress: Progress | None = None
) -> RunOutcome:
    """Build, run the reference and the target, and assemble the record.

    A failure after preparation (build step, crash, timeout) yields a ``failed`` record with
    its logs rather than an exception.
    """
    report: Progress = progress or (lambda phase, done, total: None)
    builder = _RunBuilder(prepared, workdir)
    plan = builder.experiment.measurement
    problem = prepared.problem
    functional_samples = min(plan.accuracy_samples or problem.n_samples, problem.n_samples)

    report("build", 0, 1)
    try:
        deployable = prepared.toolchain.build(problem, prepared.config, workdir / "build")
    except BuildError as exc:
        builder.logs.append(f"==== build step {exc.step} failed ====\n{exc.log}")
        return RunOutcome(builder.failed("build", str(exc)), builder.artifacts, workdir)
    builder.steps = deployable.steps
    _add_deployable(builder, deployable, "deployed_")
    report("build", 1, 1)

    try:
        reference_path = _reference_outputs(builder, functional_samples, report)
    except (BuildError, RunError) as exc:
        return RunOutcome(builder.failed("reference", str(exc)), builder.artifacts, workdir)

    raw = prepared.target.execute(
        ExecutionRequest(
            deployable=deployable,
            inputs_path=problem.dataset_path,
            environment=prepared.experiment.environment,
            plan=plan,
            functional_samples=functional_samples,
            workdir=workdir / "target",
        ),
        progress=report,
    )
    builder.collect_logs(raw, "target")
    builder.environment = raw.environment
    # Steps the target ran itself (cross-compilation) follow the toolchain's.
    builder.steps = [*deployable.steps, *raw.steps]
    if raw.functional is not None:
        builder.artifacts.add("outputs", raw.functional.outputs_path)
    if raw.failure is not None:
        return RunOutcome(
            builder.failed(raw.failure.kind.value, f"{raw.failure.phase}: {raw.failure.message}"),
            builder.artifacts,
            workdir,
        )
    report("metrics", 0, 1)
    deployed_size = deployable.deployed_size_bytes
    if raw.provenance is Provenance.SIMULATED:
        metrics, validity, per_rep = simulated_metrics(raw, plan, deployed_size)
        builder.metrics.update(metrics)
        builder.repetitions = per_rep
    else:
        metrics, validity, per_rep, samples = latency_metrics(raw, plan, deployed_size)
        builder.metrics.update(metrics)
        builder.metrics.update(raw.target_metrics)
        builder.repetitions = per_rep
        builder.session = raw.repetitions[0].session_info if raw.repetitions else {}
        raw_path = workdir / "raw_latencies.npz"
        np.savez(raw_path, **samples)  # type: ignore[arg-type]
        builder.artifacts.add("raw_latencies", raw_path)
    builder.metrics["input_model_size_bytes"] = problem.model_size_bytes
    _functional_metrics(builder, raw, reference_path)
    report("metrics", 1, 1)
    record = builder.record(None, ValidityInfo(**validity.model_dump()))
    return RunOutcome(record, builder.artifacts, workdir)


def new_workdir() -> Path:
    """A fresh temporary work directory for one run (the caller removes it)."""
    return Path(tempfile.mkdtemp(prefix="deploybench-run-"))


def run_experiment(
    experiment: Experiment,
    workdir: Path | None = None,
    progress: Progress | None = None,
    files: ProblemFiles | None = None,
) -> RunOutcome:
    """Prepare and execute one experiment; user errors raise before anything runs."""
    report: Progress = progress or (lambda phase, done, total: None)
    report("resolve", 0, 1)
    prepared = prepare_experiment(experiment, files)
    report("resolve", 1, 1)
    folder = workdir or new_workdir()
    return execute_prepared(prepared, folder, report)
