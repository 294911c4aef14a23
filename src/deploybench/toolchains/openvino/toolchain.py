"""OpenVINO toolchain: convert → (quantize → evaluate) → package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, cast

from pydantic import BaseModel

from deploybench.plugins.availability import Availability, distribution_version
from deploybench.problems.resolved import ResolvedProblem
from deploybench.targets.base import TargetInfo
from deploybench.toolchains.base import (
    Deployable,
    Finding,
    Severity,
    Toolchain,
)
from deploybench.toolchains.openvino import checks
from deploybench.toolchains.openvino.config import OpenVinoConfig
from deploybench.toolchains.openvino.properties import (
    DEVICE,
    compile_properties,
    compiled_facts,
    precision_mismatch,
    session_config,
)
from deploybench.toolchains.openvino.steps import NncfQuantizeStep, OvConvertStep
from deploybench.toolchains.workflow import (
    WorkflowState,
    WorkflowStep,
    chain_findings,
    require_chain,
    run_workflow,
)
from deploybench.toolchains.workflow.state import OPENVINO_IR

_SESSION_FACTORY = "deploybench.toolchains.openvino.session:open_session"
CONFIG_FILE = "openvino_config.json"


class OpenVinoToolchain(Toolchain):
    """ONNX models converted to OpenVINO IR and run by its CPU plugin: f32, bf16, f16 or
    NNCF INT8, with performance hint, streams and threads."""

    name: ClassVar[str] = "openvino"
    summary: ClassVar[str] = (
        "OpenVINO CPU plugin: ONNX converted to IR, f32/bf16/f16 inference precision, NNCF "
        "post-training INT8, latency or throughput hint, streams and threads."
    )
    config_model: ClassVar[type[BaseModel]] = OpenVinoConfig
    distribution: ClassVar[str | None] = "openvino"
    input_formats: ClassVar[tuple[str, ...]] = ("onnx", "torch")
    capabilities: ClassVar[tuple[str, ...]] = (
        "f32",
        "bf16",
        "f16",
        "int8-ptq",
        "performance-hint",
        "streams",
        "threads",
        "torch-convert",
        "workflow",
    )

    @classmethod
    def availability(cls) -> Availability:
        """Needs the openvino package (NNCF only for int8, checked by :meth:`check`)."""
        return Availability.of_modules("openvino", extra="openvino")

    @classmethod
    def tool_version(cls) -> str | None:
        """Installed openvino version."""
        return distribution_version("openvino")

    def reference_config(self) -> BaseModel:
        """f32 inference precision, latency hint, no quantization."""
        return OpenVinoConfig(precision="f32", hint="latency")

    def workflow(self, config: BaseModel, model_format: str) -> list[WorkflowStep]:
        """The explicit pipeline, or the default: convert (from ONNX or straight from
        PyTorch), then quantize when precision is int8."""
        cfg = cast(OpenVinoConfig, config)
        if cfg.pipeline is not None:
            return list(cfg.pipeline)
        steps: list[WorkflowStep] = [OvConvertStep(step="convert")]
        if cfg.precision == "int8":
            steps.append(
                NncfQuantizeStep(
                    step="quantize",
                    calibration_samples=cfg.calibration_samples,
                    preset=cfg.quantization_preset,
                )
            )
        return steps

    @staticmethod
    def effective(config: BaseModel) -> OpenVinoConfig:
        """The config as the session sees it: precision int8 when a quantize step runs, with
        that step's calibration settings."""
        cfg = cast(OpenVinoConfig, config)
        if cfg.pipeline is None or not cfg.quantizes:
            return cfg
        step = next(s for s in cfg.pipeline if isinstance(s, NncfQuantizeStep))
        return cfg.model_copy(
            update={
                "precision": "int8",
                "calibration_samples": step.calibration_samples,
                "quantization_preset": step.preset,
            }
        )

    def check(
        self, problem: ResolvedProblem, target: TargetInfo, config: BaseModel
    ) -> list[Finding]:
        """Format and workflow, target, precision, types, threads, then conversion and layer
        support."""
        cfg = self.effective(config)
        if problem.model_format not in self.input_formats:
            return [
                Finding(
                    severity=Severity.ERROR,
                    code="unsupported-format",
                    message=f"the openvino toolchain takes ONNX or PyTorch models, not "
                    f"{problem.model_format}",
                    fix="export the model to ONNX (torch.onnx.export) and use that file",
                )
            ]
        steps = self.workflow(config, problem.model_format)
        findings = chain_findings(steps, problem.model_format, (OPENVINO_IR,), self.name)
        if "python-session" not in target.executes:
            findings.append(
                Finding(
                    severity=Severity.ERROR,
                    code="target-cannot-run-python",
                    message=f"target '{target.name}' cannot run a Python OpenVINO session",
                    fix="pick a host target such as 'local'",
                )
            )
        findings.extend(checks.precision_findings(cfg, target))
        findings.extend(checks.problem_findings(problem, cfg))
        findings.extend(checks.thread_findings(cfg, target))
        if not any(f.severity is Severity.ERROR for f in findings):
            # Converting is only meaningful (and only safe) once the workflow is sound.
            findings.extend(checks.model_findings(problem, steps))
        return findings

    def build(self, problem: ResolvedProblem, config: BaseModel, workdir: Path) -> Deployable:
        """Run the logged workflow into ``workdir``, then package the runtime config."""
        cfg = self.effective(config)
        state = WorkflowState.start(problem, workdir)
        ov_version = distribution_version("openvino") or "not installed"
        state.tool_versions["openvino"] = ov_version
        steps = self.workflow(config, problem.model_format)
        require_chain(steps, problem.model_format, (OPENVINO_IR,), self.name)
        final = run_workflow(steps, state)
        entry, entry_weights = final.path, final.companions[0]

        settings = session_config(cfg)
        properties = compile_properties(settings)
        with state.pipeline.step(
            "package",
            "openvino",
            ov_version,
            final.files(),
            {"device": DEVICE, "properties": properties},
        ) as step:
            import openvino as ov  # type: ignore[import-untyped]

            config_path = step.output(workdir / CONFIG_FILE)
            config_path.write_text(json.dumps({DEVICE: properties}, indent=2) + "\n")
            compiled = ov.Core().compile_model(str(entry), DEVICE, properties)
            facts = compiled_facts(compiled)
            step.log(f"compiled on this machine's {DEVICE}: {facts}")
            mismatch = precision_mismatch(cfg.precision, facts)
            if mismatch:
                step.log(f"WARNING {mismatch}; a session on such a CPU refuses to run")
            step.log(
                f"reproduce with: benchmark_app -m {entry.name} -d {DEVICE} "
                f"-load_config {CONFIG_FILE}"
            )
        state.keep(config_path, "runtime-config")
        del entry_weights  # listed by the step that wrote it

        deployable = Deployable(
            toolchain=self.name,
            kind="python-session",
            session_factory=_SESSION_FACTORY,
            entry=entry.name,
            files=state.files,
            session_config=settings,
            inputs=problem.inputs,
            outputs=problem.outputs,
            steps=state.pipeline.steps,
            tool_versions=state.tool_versions,
            workflow=[step.model_dump() for step in steps],
            root=workdir,
        )
        deployable.write_manifest()
        return deployable
