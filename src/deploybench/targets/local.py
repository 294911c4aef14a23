"""The local CPU: every repetition is a fresh worker process on this host."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import psutil

from deploybench.harness.environment import cpu_identity
from deploybench.harness.launcher import LaunchResult, launch, python_worker_argv
from deploybench.harness.protocol import TimingPlan, WorkerRequest, WorkerResult
from deploybench.plugins import PluginKind, load_plugin
from deploybench.plugins.availability import Availability
from deploybench.probes.base import Probe, ProbeReading, ProcessObservation
from deploybench.targets.base import (
    ExecutionRequest,
    FailureKind,
    FunctionalRecord,
    MemoryRegion,
    ProgressCallback,
    Provenance,
    RawRun,
    RepetitionRecord,
    RunFailure,
    Target,
    TargetInfo,
)
from deploybench.toolchains.base import C_SOURCE

PYTHON_SESSION = "python-session"


def timing_plan(request: ExecutionRequest) -> TimingPlan:
    """The worker's timing plan from the resolved measurement plan."""
    plan = request.plan
    assert plan.warmup_runs is not None and plan.warmup_seconds is not None
    assert plan.min_iterations is not None and plan.min_duration is not None
    assert plan.max_duration is not None and plan.max_iterations is not None
    return TimingPlan(
        warmup_runs=plan.warmup_runs,
        warmup_seconds=plan.warmup_seconds,
        # Past its minimum, warm-up may go on until steady for as long again (at least 1 s).
        warmup_max_seconds=max(2 * plan.warmup_seconds, plan.warmup_seconds + 1.0),
        min_iterations=plan.min_iterations,
        min_duration=plan.min_duration,
        max_duration=plan.max_duration,
        max_iterations=plan.max_iterations,
    )


def _failure(
    phase: str, launched: LaunchResult, result: WorkerResult | None, log: Path, timeout: float
) -> RunFailure | None:
    """Classify how a worker ended; None when it succeeded."""
    if launched.timed_out:
        return RunFailure(
            kind=FailureKind.TIMEOUT,
            message=f"{phase} did not finish within {timeout:g} s and was killed; raise "
            "measurement.timeout or lower min_duration",
            phase=phase,
            log_path=log,
        )
    if launched.oom_killed or (
        result is not None and result.error and result.error.kind == "memory_limit"
    ):
        return RunFailure(
            kind=FailureKind.MEMORY_LIMIT,
            message=f"{phase} exceeded environment.memory_limit and was stopped; raise the limit",
            phase=phase,
            log_path=log,
        )
    if result is not None and result.error is not None:
        return RunFailure(
            kind=FailureKind.RUNTIME_ERROR, message=result.error.message, phase=phase, log_path=log
        )
    if result is None or launched.exit_code != 0:
        how = (
            f"killed by signal {launched.signal}"
            if launched.signal is not None
            else f"exit code {launched.exit_code}"
        )
        return RunFailure(
            kind=FailureKind.CRASH,
            message=f"{phase} worker crashed ({how}) without a result; see its log",
            phase=phase,
            log_path=log,
        )
    return None


class LocalCpuTarget(Target):
    """This host's CPU, measured for real (provenance ``measured``)."""

    name: ClassVar[str] = "local"
    summary: ClassVar[str] = "This machine's CPU; one fresh worker process per repetition."

    def __init__(self, python: str | None = None) -> None:
        # A toolchain environment (its own virtualenv) will pass its interpreter here.
        self._python = python

    @classmethod
    def availability(cls) -> Availability:
        """Always available: it is the machine we run on."""
        return Availability(available=True)

    def describe(self) -> TargetInfo:
        """CPU model, cores, ISA flags and memory of this host."""
        model, flags = cpu_identity()
        return TargetInfo(
            name=self.name,
            kind="host",
            description=f"local CPU ({model or 'unknown model'})",
            cpu_model=model,
            cores=os.cpu_count(),
            isa_features=flags,
            memories=[
                MemoryRegion(name="ram", kind="ram", size_bytes=psutil.virtual_memory().total)
            ],
            provenance=Provenance.MEASURED,
            executes=[PYTHON_SESSION, C_SOURCE],
            capabilities=["latency", "peak-rss", "cpu-affinity", "memory-limit", "threads"],
            extra={"usable_cpus": sorted(os.sched_getaffinity(0))},
        )

    def _run_worker(
        self,
        request: ExecutionRequest,
        phase: str,
        worker: WorkerRequest,
        timeout: float,
        probes: list[Probe] | None = None,
    ) -> tuple[LaunchResult, WorkerResult | None, Path, list[ProbeReading]]:
        folder = request.workdir / phase
        request_path = folder / "request.json"
        request_path.write_text(worker.model_dump_json(), encoding="utf-8")
        log = folder / "worker.log"
        for probe in probes or []:
            probe.before()
        launched = launch(
            python_worker_argv(request_path, self._python),
            request.environment,
            timeout=timeout,
            log_path=log,
            cwd=folder,
        )
        result = None
        if worker.result_path.is_file():
            result = WorkerResult.model_validate_json(worker.result_path.read_text("utf-8"))
        observation = ProcessObservation(
            peak_rss_bytes=result.peak_rss_bytes if result else None,
            user_seconds=launched.user_seconds,
            system_seconds=launched.system_seconds,
            wall_seconds=launched.wall_seconds,
        )
        readings = [reading for probe in probes or [] for reading in probe.after(observation)]
        return launched, result, log, readings

    def _worker_request(
        self, request: ExecutionRequest, phase: str, **fields: object
    ) -> WorkerRequest:
        folder = request.workdir / phase
        folder.mkdir(parents=True, exist_ok=True)
        return WorkerRequest(
            deployable_dir=request.deployable.root,
            inputs_path=request.inputs_path,
            batch_size=request.plan.batch_size,
            threads=request.environment.threads,
            result_path=folder / "result.json",
            latencies_path=folder / "latencies.npy",
            runtime_latencies_path=folder / "runtime_latencies.npy",
            outputs_path=folder / "outputs.npz",
            **fields,
        )

    def execute(
        self, request: ExecutionRequest, progress: ProgressCallback | None = None
    ) -> RawRun:
        """Functional pass in its own process, then each repetition in a fresh process."""
        timeout = float(request.plan.timeout or 600.0)
        report = progress or (lambda phase, done, total: None)
        environment: dict[str, object] = {}
        mechanism: str | None = None
        functional: FunctionalRecord | None = None

        def finish(failure: RunFailure | None, reps: list[RepetitionRecord]) -> RawRun:
            return RawRun(
                provenance=Provenance.MEASURED,
                repetitions=reps,
                functional=functional,
                environment={**environment, "memory_limit_mechanism": mechanism}
                if environment
                else {},
                failure=failure,
                memory_limit_mechanism=mechanism,
            )

        if request.functional_samples > 0:
            report("functional", 0, 1)
            worker = self._worker_request(
                request,
                "functional",
                functional_samples=request.functional_samples,
                capture_environment=not request.timing,
            )
            launched, result, log, _ = self._run_worker(request, "functional", worker, timeout)
            mechanism = launched.memory_mechanism
            failure = _failure("functional pass", launched, result, log, timeout)
            if failure is not None:
                return finish(failure, [])
            assert result is not None
            environment = result.environment or {}
            functional = FunctionalRecord(
                outputs_path=worker.outputs_path, n_samples=result.functional_samples, log_path=log
            )
            report("functional", 1, 1)

        probes: list[Probe] = [
            load_plugin(PluginKind.PROBE, name)() for name in request.plan.probes
        ]
        repetitions: list[RepetitionRecord] = []
        total = (request.plan.repetitions or 1) if request.timing else 0
        for index in range(total):
            report("repetitions", index, total)
            phase = f"repetition-{index}"
            worker = self._worker_request(
                request, phase, timing=timing_plan(request), capture_environment=index == 0
            )
            launched, result, log, readings = self._run_worker(
                request, phase, worker, timeout, probes
            )
            mechanism = launched.memory_mechanism
            failure = _failure(phase, launched, result, log, timeout)
            if failure is not None:
                return finish(failure, repetitions)
            assert result is not None
            if index == 0:
                environment = result.environment or {}
            repetitions.append(
                RepetitionRecord(
                    index=index,
                    latencies_path=worker.latencies_path,
                    runtime_latencies_path=result.runtime_latencies_path,
                    load_ns=result.load_ns,
                    first_inference_ns=result.first_inference_ns,
                    warmup_runs=result.warmup_runs,
                    warmup_ns=result.warmup_ns,
                    steady_state=result.steady_state,
                    measured_ns=result.measured_ns,
                    stop_rule_met=result.stop_rule_met,
                    stopped_by=result.stopped_by,
                    peak_rss_bytes=result.peak_rss_bytes,
                    baseline_rss_bytes=result.baseline_rss_bytes,
                    wall_seconds=launched.wall_seconds,
                    log_path=log,
                    session_info=result.session_info,
                    probes=readings,
                )
            )
        report("repetitions", total, total)
        return finish(None, repetitions)
