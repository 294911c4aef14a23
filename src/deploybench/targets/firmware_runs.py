"""Running generated C on a simulator: cross-compile, boot once per pass, count, read back.

Shared by the Cortex-M boards and aarch64 Linux. Every boot is a fresh QEMU process (the reset
REQ-00003 and REQ-00042 ask for); the dataset's inputs go in and the outputs come back through
files (semihosting on Cortex-M, plain stdio under user-mode emulation). The passes are:

1. **functional**: every functional sample once, outputs written back (accuracy, semantic
   preservation against the host's ONNX reference);
2. **baseline**: zero inferences, counting instructions (start-up, input loading);
3. **counted boots**, one per repetition: ``K`` inferences, counting instructions.

Instructions per inference = (count with K - baseline) / K, exact and deterministic; cycles
and latency are estimated from it with the core's cycle model (provenance ``simulated``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.problems.datasets import load_npz
from deploybench.runner.simulated import BOOTS, LATENCY_UNAVAILABLE, SIMULATED_LATENCY_NS
from deploybench.targets.base import (
    ExecutionRequest,
    FailureKind,
    FunctionalRecord,
    MemoryRegion,
    ProgressCallback,
    Provenance,
    RawRun,
    RunFailure,
)
from deploybench.targets.embedded.compile import CompileOptions, FirmwareBuild
from deploybench.targets.embedded.cycle_model import (
    CycleEstimate,
    instructions_per_inference,
)
from deploybench.targets.embedded.elf_size import elf_memory
from deploybench.targets.embedded.qemu import QemuRun
from deploybench.targets.embedded.stack import worst_stack
from deploybench.targets.embedded.tools import first_line_of
from deploybench.toolchains.base import C_SOURCE, Deployable
from deploybench.toolchains.pipeline import BuildError, Pipeline

# Inferences of a counted boot: enough to average data-dependent paths (ReLU, max-pool
# branches) over several samples; the count is exact, so more would add time, not precision.
COUNTED_INFERENCES = 20


@dataclass(frozen=True)
class Platform:
    """What differs between simulators: how to compile, boot, and estimate cycles."""

    name: str
    tool: str
    compile: Callable[[list[Path], list[Path], CompileOptions, Path], FirmwareBuild]
    boot: Callable[[Path, Path, float, bool], QemuRun]
    cycles: Callable[[float], CycleEstimate | None]
    cycles_unavailable: str | None
    memories: list[MemoryRegion]
    environment: dict[str, Any]


class _FailedError(Exception):
    def __init__(self, failure: RunFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def execute_firmware(
    request: ExecutionRequest, platform: Platform, progress: ProgressCallback | None = None
) -> RawRun:
    """Compile the deployable's C for ``platform`` and run the functional, baseline and
    counted boots; failures come back in :attr:`RawRun.failure`, never as exceptions."""
    report = progress or (lambda phase, done, total: None)
    deployable = request.deployable
    workdir = request.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline()
    functional: FunctionalRecord | None = None
    metrics: dict[str, Any] = {}

    def finish(failure: RunFailure | None) -> RawRun:
        return RawRun(
            provenance=Provenance.SIMULATED,
            repetitions=[],
            functional=functional,
            environment=platform.environment,
            failure=failure,
            steps=pipeline.steps,
            logs=_counting_logs(workdir),
            target_metrics=metrics,
        )

    if deployable.kind != C_SOURCE:
        return finish(
            RunFailure(
                kind=FailureKind.RUNTIME_ERROR,
                message=f"{platform.name} runs generated C ('{C_SOURCE}' deployables), not "
                f"'{deployable.kind}'; deploy with the cgen toolchain",
                phase="cross-compile",
            )
        )
    try:
        build = _compile(deployable, platform, pipeline, workdir / "firmware")
        metrics["footprint"] = footprint_metrics(build, deployable, platform.memories)
        timeout = float(request.plan.timeout or 600.0)
        session_config = deployable.session_config
        inputs = _write_inputs(request, session_config, workdir)
        if request.functional_samples > 0:
            report("functional", 0, 1)
            functional = _functional_pass(request, build, platform, inputs, timeout)
            report("functional", 1, 1)
        if request.timing:
            metrics.update(_counted_boots(request, build, platform, inputs, timeout, report))
    except _FailedError as failed:
        return finish(failed.failure)
    except BuildError as exc:
        return finish(
            RunFailure(
                kind=FailureKind.RUNTIME_ERROR,
                message=str(exc),
                phase="cross-compile",
                log_path=_write_log(workdir / "cross-compile.log", exc.log),
            )
        )
    return finish(None)


def _compile(
    deployable: Deployable, platform: Platform, pipeline: Pipeline, out_dir: Path
) -> FirmwareBuild:
    """Cross-compile the generated sources with the harness: a logged step of the run."""
    config = deployable.session_config
    sources = [deployable.root / path for path in config["sources"]]
    include = deployable.root / config["include_dir"]
    options = CompileOptions(**config.get("compile", {}))
    out_dir.mkdir(parents=True, exist_ok=True)
    version = first_line_of([platform.tool, "--version"]) or "not installed"
    with pipeline.step(
        "cross-compile",
        platform.tool,
        version,
        {path.name: path for path in sources},
        {"platform": platform.name, **options.model_dump(mode="json")},
    ) as step:
        build = platform.compile(sources, [include], options, out_dir)
        step.output(build.elf)
        step.log("\n".join(" ".join(command) for command in build.commands))
        if build.log.strip():
            step.log(build.log.strip())
    return build


def _write_inputs(request: ExecutionRequest, config: dict[str, Any], workdir: Path) -> Path:
    """The dataset's samples as raw float32, one sample (batch 1) after the other."""
    spec = request.deployable.inputs[0]
    arrays = load_npz(request.inputs_path)
    samples = np.ascontiguousarray(arrays[spec.name], dtype="<f4")
    per_sample = int(config["input_size"])
    flat = samples.reshape(samples.shape[0], -1)
    if flat.shape[1] != per_sample:
        raise _FailedError(
            RunFailure(
                kind=FailureKind.RUNTIME_ERROR,
                message=f"input '{spec.name}' has {flat.shape[1]} values per sample but the "
                f"generated model takes {per_sample}",
                phase="inputs",
            )
        )
    path = workdir / "inputs.f32"
    flat.tofile(path)
    return path


def _boot(
    platform: Platform,
    build: FirmwareBuild,
    folder: Path,
    phase: str,
    inputs: Path,
    samples: int,
    inferences: int,
    write_outputs: bool,
    timeout: float,
    count: bool,
) -> QemuRun:
    """One fresh boot with its own run.cfg and log; a failure raises :class:`_FailedError`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "inputs.f32").symlink_to(inputs)
    (folder / "run.cfg").write_text(
        f"inferences {inferences}\nsamples {samples}\ninput inputs.f32\n"
        f"output {'outputs.f32' if write_outputs else '-'}\n",
        encoding="ascii",
    )
    run = platform.boot(build.elf, folder, timeout, count)
    log = _write_log(
        folder / "boot.log",
        f"$ {' '.join(run.command)}\n---- stdout ----\n{run.stdout}\n---- stderr ----\n"
        f"{run.stderr}\nexit code {run.exit_code}; {run.wall_seconds:.2f} s\n",
    )
    if run.timed_out:
        raise _FailedError(
            RunFailure(
                kind=FailureKind.TIMEOUT,
                message=f"the firmware did not finish within {timeout:g} s and the watchdog "
                "killed it (a hang); raise measurement.timeout if it is only slow",
                phase=phase,
                log_path=log,
            )
        )
    if run.fault is not None:
        raise _FailedError(
            RunFailure(
                kind=FailureKind.CRASH,
                message=f"the firmware faulted: {run.fault}",
                phase=phase,
                log_path=log,
            )
        )
    if run.exit_code != 0:
        error = next(
            (line for line in run.stdout.splitlines() if "DEPLOYBENCH-ERROR" in line),
            f"exit code {run.exit_code}",
        )
        raise _FailedError(
            RunFailure(
                kind=FailureKind.RUNTIME_ERROR,
                message=f"the firmware failed: {error}",
                phase=phase,
                log_path=log,
            )
        )
    if count and run.instructions is None:
        raise _FailedError(
            RunFailure(
                kind=FailureKind.INFRASTRUCTURE,
                message="QEMU reported no instruction count (the counting plugin did not load)",
                phase=phase,
                log_path=log,
            )
        )
    return run


def _functional_pass(
    request: ExecutionRequest,
    build: FirmwareBuild,
    platform: Platform,
    inputs: Path,
    timeout: float,
) -> FunctionalRecord:
    folder = request.workdir / "functional"
    n = request.functional_samples
    _boot(platform, build, folder, "functional", inputs, n, 0, True, timeout, False)
    spec = request.deployable.outputs[0]
    shape = request.deployable.session_config["output_shape"]
    values = np.fromfile(folder / "outputs.f32", dtype="<f4")
    expected = n * int(request.deployable.session_config["output_size"])
    if values.size != expected:
        raise _FailedError(
            RunFailure(
                kind=FailureKind.RUNTIME_ERROR,
                message=f"the firmware wrote {values.size} output values, expected {expected}",
                phase="functional",
                log_path=folder / "boot.log",
            )
        )
    outputs_path = folder / "outputs.npz"
    arrays = {spec.name: values.reshape(n, *shape[1:]).astype(np.float32)}
    np.savez(outputs_path, **arrays)  # type: ignore[arg-type]
    return FunctionalRecord(outputs_path=outputs_path, n_samples=n, log_path=folder / "boot.log")


def _counted_boots(
    request: ExecutionRequest,
    build: FirmwareBuild,
    platform: Platform,
    inputs: Path,
    timeout: float,
    report: ProgressCallback,
) -> dict[str, Any]:
    """The baseline boot and one counted boot per repetition."""
    samples = max(1, min(request.functional_samples or 1, COUNTED_INFERENCES))
    repetitions = request.plan.repetitions or 1
    report("repetitions", 0, repetitions + 1)
    baseline = _boot(
        platform,
        build,
        request.workdir / "baseline",
        "baseline",
        inputs,
        samples,
        0,
        False,
        timeout,
        True,
    )
    assert baseline.instructions is not None
    boots: list[dict[str, Any]] = []
    latencies: list[float] = []
    for index in range(repetitions):
        report("repetitions", index + 1, repetitions + 1)
        run = _boot(
            platform,
            build,
            request.workdir / f"boot-{index}",
            f"boot-{index}",
            inputs,
            samples,
            COUNTED_INFERENCES,
            False,
            timeout,
            True,
        )
        assert run.instructions is not None
        per = instructions_per_inference(
            run.instructions, baseline.instructions, COUNTED_INFERENCES
        )
        boot: dict[str, Any] = {
            "index": index,
            "inferences": COUNTED_INFERENCES,
            "instructions_total": run.instructions,
            "instructions_baseline": baseline.instructions,
            "per_inference": per,
            "wall_seconds": run.wall_seconds,
        }
        estimate = platform.cycles(per)
        if estimate is not None and estimate.seconds_at_clock is not None:
            boot["simulated_ns"] = estimate.seconds_at_clock * 1e9
            latencies.append(estimate.seconds_at_clock * 1e9)
        boots.append(boot)
    report("repetitions", repetitions + 1, repetitions + 1)
    per_inference = boots[0]["per_inference"]
    metrics: dict[str, Any] = {
        BOOTS: boots,
        "instructions": {
            "per_inference": per_inference,
            "unit": "instructions",
            "provenance": "simulated",
            "method": f"(count with {COUNTED_INFERENCES} inferences - count with 0) / "
            f"{COUNTED_INFERENCES}, QEMU TCG plugin, exact",
            "baseline": baseline.instructions,
        },
    }
    estimate = platform.cycles(per_inference)
    if estimate is None:
        metrics["cycles"] = {"unavailable": platform.cycles_unavailable or "no cycle model"}
        metrics[LATENCY_UNAVAILABLE] = platform.cycles_unavailable
    else:
        metrics["cycles"] = {
            "per_inference": estimate.cycles,
            "cpi": estimate.cpi,
            "clock_hz": estimate.clock_hz,
            "provenance": "simulated",
            "source": estimate.source_citation,
        }
        metrics[SIMULATED_LATENCY_NS] = latencies
    return metrics


def footprint_metrics(
    build: FirmwareBuild, deployable: Deployable, memories: list[MemoryRegion]
) -> dict[str, Any]:
    """Flash, RAM and stack of the firmware, and each memory's use against its capacity."""
    memory = elf_memory(build.elf)
    stack = worst_stack(build)
    config = deployable.session_config
    # The model's own need, apart from the harness's stdio (which dominates small models).
    model_stack = worst_stack(build, roots=[f"{config.get('prefix', 'dbm')}_run"])
    ram = memory.ram_bytes + stack.bytes
    used = {"flash": memory.flash_bytes, "ram": ram}
    regions = [
        {
            "name": region.name,
            "used_bytes": used[region.kind],
            "capacity_bytes": region.size_bytes,
            "share": used[region.kind] / region.size_bytes,
        }
        for region in memories
        if region.kind in used
    ]
    return {
        "provenance": "measured",
        "method": "ELF section headers (text+data / data+bss, as arm-none-eabi-size); stack "
        "from -fstack-usage and the call graph (worst path from the reset handler, and from "
        "the model's run function alone)",
        "flash_bytes": memory.flash_bytes,
        "ram_bytes": memory.ram_bytes,
        "text_bytes": memory.text,
        "data_bytes": memory.data,
        "bss_bytes": memory.bss,
        "weights_bytes": config.get("weights_bytes"),
        "arena_bytes": config.get("arena_bytes"),
        "stack_bytes": stack.bytes,
        "stack_path": stack.path,
        "stack_notes": stack.notes,
        "model_stack_bytes": model_stack.bytes,
        "model_stack_path": model_stack.path,
        "ram_with_stack_bytes": ram,
        "regions": regions,
    }


def _counting_logs(workdir: Path) -> list[Path]:
    """Logs of the baseline and counted boots that ran, in boot order."""
    boots = sorted(workdir.glob("boot-*/boot.log"), key=lambda p: int(p.parent.name[5:]))
    return [path for path in (workdir / "baseline" / "boot.log", *boots) if path.is_file()]


def _write_log(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
