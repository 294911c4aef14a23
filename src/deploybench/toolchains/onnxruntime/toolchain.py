"""ONNX Runtime toolchain: validate → (pre-process → quantize) → optimize → package."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar, cast

from pydantic import BaseModel

from deploybench.plugins.availability import Availability, distribution_version
from deploybench.problems.resolved import ResolvedProblem
from deploybench.targets.base import TargetInfo
from deploybench.toolchains.base import (
    Deployable,
    DeployableFile,
    Finding,
    Severity,
    Toolchain,
)
from deploybench.toolchains.onnxruntime.config import OnnxRuntimeConfig
from deploybench.toolchains.onnxruntime.providers import create_session
from deploybench.toolchains.pipeline import Pipeline

_SESSION_FACTORY = "deploybench.toolchains.onnxruntime.session:open_session"
_LEVELS = {
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
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
    input_formats: ClassVar[tuple[str, ...]] = ("onnx",)
    capabilities: ClassVar[tuple[str, ...]] = (
        "graph-optimization",
        "dynamic-int8",
        "static-int8-qdq",
        "per-channel",
        "threads",
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

    def check(
        self, problem: ResolvedProblem, target: TargetInfo, config: BaseModel
    ) -> list[Finding]:
        """Format, providers, opset, quantization fit, and whether ORT can load the model."""
        cfg = cast(OnnxRuntimeConfig, config)
        findings: list[Finding] = []
        if problem.model_format != "onnx":
            return [
                Finding(
                    severity=Severity.ERROR,
                    code="unsupported-format",
                    message=f"onnxruntime takes ONNX models, not {problem.model_format}",
                    fix="export the model to ONNX first",
                )
            ]
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
        already = sorted(_QUANT_OPS.intersection(problem.operators))
        if cfg.quantization != "none" and already:
            findings.append(
                Finding(
                    severity=Severity.ERROR,
                    code="already-quantized",
                    message=f"the model already holds quantized operators ({', '.join(already)})",
                    fix="set quantization: none, or start from the fp32 model",
                )
            )
        if cfg.quantization == "dynamic-int8" and not _DYNAMIC_QUANT_OPS.intersection(
            problem.operators
        ):
            findings.append(
                Finding(
                    severity=Severity.WARNING,
                    code="nothing-to-quantize",
                    message="dynamic quantization only rewrites MatMul/Gemm/attention/RNN "
                    "operators and this model has none",
                    fix="use static-int8 for convolutional models",
                )
            )
        if cfg.quantization == "dynamic-int8" and "Conv" in problem.operators:
            findings.append(
                Finding(
                    severity=Severity.INFO,
                    code="conv-stays-fp32",
                    message="dynamic quantization leaves Conv layers in fp32",
                    fix="static-int8 quantizes convolutions too",
                )
            )
        if cfg.quantization == "static-int8" and cfg.calibration_samples > problem.n_samples:
            findings.append(
                Finding(
                    severity=Severity.WARNING,
                    code="few-calibration-samples",
                    message=f"calibration asks for {cfg.calibration_samples} samples but the "
                    f"dataset has {problem.n_samples}; all of them will be used",
                )
            )
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
        """Run the logged pipeline into ``workdir``."""
        cfg = cast(OnnxRuntimeConfig, config)
        workdir.mkdir(parents=True, exist_ok=True)
        pipeline = Pipeline()
        onnx_version = distribution_version("onnx") or "not installed"
        ort_version = distribution_version("onnxruntime") or "not installed"
        files: list[DeployableFile] = []

        with pipeline.step(
            "validate", "onnx", onnx_version, {"input.onnx": problem.model_path}
        ) as step:
            import onnx

            current = step.output(workdir / "model.onnx")
            shutil.copyfile(problem.model_path, current)
            onnx.checker.check_model(str(current), full_check=True)
            step.log(f"opset {problem.opset}; operators: {', '.join(problem.operators)}")
        files.append(DeployableFile.of(workdir, current, "model"))

        if cfg.quantization != "none":
            from onnxruntime.quantization.shape_inference import quant_pre_process

            with pipeline.step(
                "preprocess", "onnxruntime.quantization", ort_version, {current.name: current}
            ) as step:
                prepared = step.output(workdir / "preprocessed.onnx")
                quant_pre_process(str(current), str(prepared))
            from deploybench.toolchains.onnxruntime.quantization import quantize

            parameters = {"quantization": cfg.quantization, "per_channel": cfg.per_channel}
            with pipeline.step(
                "quantize",
                "onnxruntime.quantization",
                ort_version,
                {prepared.name: prepared},
                parameters,
            ) as step:
                quantized = step.output(workdir / "quantized.onnx")
                used = quantize(prepared, quantized, problem, cfg)
                step.log(f"quantization parameters: {used}")
            current = quantized
            files.append(DeployableFile.of(workdir, prepared, "preprocessed-model"))
            files.append(DeployableFile.of(workdir, current, "quantized-model"))

        runtime_level = "disabled"
        if cfg.graph_optimization != "disabled":
            import onnxruntime as ort

            with pipeline.step(
                "optimize",
                "onnxruntime",
                ort_version,
                {current.name: current},
                {"level": cfg.graph_optimization},
            ) as step:
                optimized = step.output(workdir / "optimized.onnx")
                so = ort.SessionOptions()
                so.graph_optimization_level = getattr(
                    ort.GraphOptimizationLevel, _LEVELS[cfg.graph_optimization]
                )
                so.optimized_model_filepath = str(optimized)
                so.log_severity_level = 3  # the one warning ORT prints is restated below
                create_session(str(current), so, list(cfg.execution_providers))
                step.log(f"saved {cfg.graph_optimization}-level optimized graph")
                if cfg.graph_optimization == "all":
                    step.log(
                        "level 'all' may insert layout (NCHWc) kernels specific to this CPU: "
                        "the optimized model is only valid on the machine that built it"
                    )
            current = optimized
            files.append(DeployableFile.of(workdir, current, "optimized-model"))
            # The deployed artifact is the optimized graph itself: nothing is re-optimized at
            # load time, so what runs is exactly the file whose sha256 is recorded.

        deployable = Deployable(
            toolchain=self.name,
            kind="python-session",
            session_factory=_SESSION_FACTORY,
            entry=current.name,
            files=files,
            session_config={
                "graph_optimization": runtime_level,
                "intra_op_threads": cfg.intra_op_threads,
                "inter_op_threads": cfg.inter_op_threads,
                "execution_mode": cfg.execution_mode,
                "execution_providers": list(cfg.execution_providers),
            },
            inputs=problem.inputs,
            outputs=problem.outputs,
            steps=pipeline.steps,
            tool_versions={"onnx": onnx_version, "onnxruntime": ort_version},
            root=workdir,
        )
        deployable.write_manifest()
        return deployable
