"""ONNX Runtime toolchain: validate → (pre-process → quantize) → optimize → package."""

from __future__ import annotations

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
from deploybench.toolchains.onnxruntime.config import OnnxRuntimeConfig
from deploybench.toolchains.onnxruntime.steps import (
    PROVIDERS_FACT,
    OrtOptimizeStep,
    OrtQuantizeStep,
    QuantizeOptions,
)
from deploybench.toolchains.workflow import (
    ExportOnnxStep,
    WorkflowState,
    WorkflowStep,
    chain_findings,
    require_chain,
    run_workflow,
)
from deploybench.toolchains.workflow.state import ONNX, TORCH

_SESSION_FACTORY = "deploybench.toolchains.onnxruntime.session:open_session"
# Ops that quantize_dynamic actually quantizes; a model without them gains nothing from it.
_DYNAMIC_QUANT_OPS = {"MatMul", "Gemm", "Attention", "LSTM", "GRU", "EmbedLayerNormalization"}
_QUANT_OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "DynamicQuantizeLinear",
    "MatMulInteger",
    "ConvInteger",
}


class OnnxRuntimeToolchain(Toolchain):
    """ONNX models on ONNX Runtime: graph optimization, INT8 quantization, session options."""

    name: ClassVar[str] = "onnxruntime"
    summary: ClassVar[str] = (
        "ONNX Runtime: graph optimization levels, dynamic or static (QDQ) INT8 quantization, "
        "threads and execution providers."
    )
    config_model: ClassVar[type[BaseModel]] = OnnxRuntimeConfig
    distribution: ClassVar[str | None] = "onnxruntime"
    input_formats: ClassVar[tuple[str, ...]] = ("onnx", "torch")
    capabilities: ClassVar[tuple[str, ...]] = (
        "graph-optimization",
        "dynamic-int8",
        "static-int8-qdq",
        "per-channel",
        "threads",
        "torch-export",
        "workflow",
    )

    @classmethod
    def availability(cls) -> Availability:
        """Needs the onnx and onnxruntime packages."""
        return Availability.of_modules("onnx", "onnxruntime", extra="onnxruntime")

    @classmethod
    def tool_version(cls) -> str | None:
        """Installed onnxruntime version."""
        return distribution_version("onnxruntime")

    def reference_config(self) -> BaseModel:
        """fp32 on the CPU with every graph optimization disabled."""
        return OnnxRuntimeConfig(graph_optimization="disabled", quantization="none")

    def workflow(self, config: BaseModel, model_format: str) -> list[WorkflowStep]:
        """The explicit pipeline, or the default one derived from the flat options: export
        (torch models), quantize, optimize."""
        cfg = cast(OnnxRuntimeConfig, config)
        if cfg.pipeline is not None:
            return list(cfg.pipeline)
        steps: list[WorkflowStep] = []
        if model_format == TORCH:
            steps.append(ExportOnnxStep(step="export-onnx"))
        if cfg.quantization != "none":
            steps.append(
                OrtQuantizeStep(
                    step="quantize",
                    mode=cfg.quantization,
                    **cfg.model_dump(include=set(QuantizeOptions.model_fields)),
                )
            )
        if cfg.graph_optimization != "disabled":
            steps.append(OrtOptimizeStep(step="optimize", level=cfg.graph_optimization))
        return steps

    def check(
        self, problem: ResolvedProblem, target: TargetInfo, config: BaseModel
    ) -> list[Finding]:
        """Format and workflow, providers, opset, quantization fit, and whether ORT can load
        the model."""
        cfg = cast(OnnxRuntimeConfig, config)
        steps = self.workflow(cfg, problem.model_format)
        if problem.model_format not in self.input_formats:
            return [
                Finding(
                    severity=Severity.ERROR,
                    code="unsupported-format",
                    message=f"onnxruntime takes ONNX or PyTorch models, not {problem.model_format}",
                    fix="export the model to ONNX first",
                )
            ]
        findings = chain_findings(steps, problem.model_format, (ONNX,), self.name)
        if "python-session" not in target.executes:
            findings.append(
                Finding(
                    severity=Severity.ERROR,
                    code="target-cannot-run-python",
                    message=f"target '{target.name}' cannot run a Python ONNX Runtime session",
                    fix="pick a host target such as 'local'",
                )
            )
        import onnxruntime as ort

        available = ort.get_available_providers()
        for provider in cfg.execution_providers:
            if provider not in available:
                findings.append(
                    Finding(
                        severity=Severity.ERROR,
                        code="provider-unavailable",
                        subject=provider,
                        message=f"execution provider {provider} is not available here",
                        fix=f"use one of: {', '.join(available)}",
                    )
                )
        for step in steps:
            if isinstance(step, OrtQuantizeStep):
                findings.extend(_quantization_findings(problem, step))
        if problem.model_format == ONNX:
            findings.extend(self._load_check(problem, available))
        return findings

    def _load_check(self, problem: ResolvedProblem, available: list[str]) -> list[Finding]:
        """Create a session once: ORT names unsupported operators and types precisely."""
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.log_severity_level = 3
        try:
            ort.InferenceSession(
                str(problem.model_path), sess_options=so, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises several unrelated exception classes
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return [
                Finding(
                    severity=Severity.ERROR,
                    code="runtime-cannot-load",
                    message=f"onnxruntime {ort.__version__} cannot load the model: {text}",
                    fix="replace the unsupported operator or type, or lower the opset",
                )
            ]
        return []

    def build(self, problem: ResolvedProblem, config: BaseModel, workdir: Path) -> Deployable:
        """Run the logged workflow into ``workdir``."""
        cfg = cast(OnnxRuntimeConfig, config)
        state = WorkflowState.start(problem, workdir)
        state.facts[PROVIDERS_FACT] = list(cfg.execution_providers)
        onnx_version = distribution_version("onnx") or "not installed"
        ort_version = distribution_version("onnxruntime") or "not installed"
        state.tool_versions.update({"onnx": onnx_version, "onnxruntime": ort_version})
        steps = self.workflow(cfg, problem.model_format)
        require_chain(steps, problem.model_format, (ONNX,), self.name)

        if problem.model_format == ONNX:
            state.validate_onnx(onnx_version)
        final = run_workflow(steps, state)
        # The deployed artifact is the last step's graph itself: nothing is re-optimized at
        # load time, so what runs is exactly the file whose sha256 is recorded.
        deployable = Deployable(
            toolchain=self.name,
            kind="python-session",
            session_factory=_SESSION_FACTORY,
            entry=final.path.name,
            files=state.files,
            session_config={
                "graph_optimization": "disabled",
                "intra_op_threads": cfg.intra_op_threads,
                "inter_op_threads": cfg.inter_op_threads,
                "execution_mode": cfg.execution_mode,
                "execution_providers": list(cfg.execution_providers),
            },
            inputs=problem.inputs,
            outputs=problem.outputs,
            steps=state.pipeline.steps,
            tool_versions=state.tool_versions,
            workflow=[step.model_dump() for step in steps],
            root=workdir,
        )
        deployable.write_manifest()
        return deployable


def _quantization_findings(problem: ResolvedProblem, step: OrtQuantizeStep) -> list[Finding]:
    """Whether quantizing this model this way makes sense."""
    findings: list[Finding] = []
    already = sorted(_QUANT_OPS.intersection(problem.operators))
    if already:
        findings.append(
            Finding(
                severity=Severity.ERROR,
                code="already-quantized",
                message=f"the model already holds quantized operators ({', '.join(already)})",
                fix="set quantization: none, or start from the fp32 model",
            )
        )
    if problem.model_format == ONNX:
        if step.mode == "dynamic-int8" and not _DYNAMIC_QUANT_OPS.intersection(problem.operators):
            findings.append(
                Finding(
                    severity=Severity.WARNING,
                    code="nothing-to-quantize",
                    message="dynamic quantization only rewrites MatMul/Gemm/attention/RNN "
                    "operators and this model has none",
                    fix="use static-int8 for convolutional models",
                )
            )
        if step.mode == "dynamic-int8" and "Conv" in problem.operators:
            findings.append(
                Finding(
                    severity=Severity.INFO,
                    code="conv-stays-fp32",
                    message="dynamic quantization leaves Conv layers in fp32",
                    fix="static-int8 quantizes convolutions too",
                )
            )
    if step.mode == "static-int8" and step.calibration_samples > problem.n_samples:
        findings.append(
            Finding(
                severity=Severity.WARNING,
                code="few-calibration-samples",
                message=f"calibration asks for {step.calibration_samples} samples but the "
                f"dataset has {problem.n_samples}; all of them will be used",
            )
        )
    return findings
