"""Compatibility checks of the OpenVINO toolchain, run before anything is built."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from typing import Any

from deploybench.plugins.availability import distribution_version
from deploybench.problems.resolved import ResolvedProblem
from deploybench.targets.base import TargetInfo
from deploybench.toolchains.base import Finding, Severity
from deploybench.toolchains.openvino.config import OpenVinoConfig
from deploybench.toolchains.openvino.properties import (
    DEVICE,
    PRECISION_ISA,
    host_capabilities,
    precision_supported,
)
from deploybench.toolchains.workflow import ModelArtifact, WorkflowStep

# Element types the CPU plugin takes as model inputs (numpy names).
SUPPORTED_DTYPES = frozenset(
    {
        "float32",
        "float16",
        "float64",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "bool",
    }
)
# Layers NNCF quantizes; a model without any has nothing to run in int8.
QUANTIZABLE_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})
ALREADY_QUANTIZED_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "DynamicQuantizeLinear",
        "MatMulInteger",
        "ConvInteger",
    }
)
_UNCONVERTED = re.compile(r"No conversion rule found for operations:\s*(.+)")
INSTALL_HINT = "install with: pip install 'deploybench[openvino]'"


def _error(code: str, message: str, fix: str | None = None, subject: str | None = None) -> Finding:
    return Finding(severity=Severity.ERROR, code=code, message=message, fix=fix, subject=subject)


def precision_findings(cfg: OpenVinoConfig, target: TargetInfo) -> list[Finding]:
    """bf16 and f16 need CPU kernels; int8 needs NNCF to build."""
    findings: list[Finding] = []
    if cfg.precision in PRECISION_ISA:
        # The plugin's own answer is authoritative for a host target (this machine).
        capabilities = host_capabilities() if target.kind == "host" else None
        if not precision_supported(cfg.precision, capabilities, target.isa_features):
            seen = (
                f"the {DEVICE} plugin lists {', '.join(capabilities)}"
                if capabilities is not None
                else f"target '{target.name}' has none of the CPU flags "
                f"{', '.join(PRECISION_ISA[cfg.precision])}"
            )
            findings.append(
                _error(
                    "precision-unavailable",
                    f"precision {cfg.precision} is unavailable on {target.name} "
                    f"({target.cpu_model or 'unknown CPU'}): {seen}; OpenVINO would run f32 "
                    "instead",
                    "use precision f32 or int8, or a CPU with "
                    f"{' or '.join(PRECISION_ISA[cfg.precision])}",
                    cfg.precision,
                )
            )
    if cfg.precision == "int8" and importlib.util.find_spec("nncf") is None:
        findings.append(
            _error(
                "nncf-missing", "precision int8 needs NNCF, which is not installed", INSTALL_HINT
            )
        )
    return findings


def problem_findings(problem: ResolvedProblem, cfg: OpenVinoConfig) -> list[Finding]:
    """Input types, quantization fit and calibration size, from the problem's metadata."""
    findings: list[Finding] = []
    for spec in problem.inputs:
        if spec.dtype not in SUPPORTED_DTYPES:
            findings.append(
                _error(
                    "unsupported-dtype",
                    f"input {spec.render()} has a type the OpenVINO {DEVICE} plugin does not take",
                    f"use one of: {', '.join(sorted(SUPPORTED_DTYPES))}",
                    spec.name,
                )
            )
        elif spec.dtype == "float64":
            findings.append(
                Finding(
                    severity=Severity.WARNING,
                    code="float64-computed-in-float32",
                    subject=spec.name,
                    message=f"input {spec.render()}: the {DEVICE} plugin computes float64 "
                    "layers in float32",
                    fix="export the model in float32 to compare like with like",
                )
            )
    if cfg.precision != "int8" or problem.model_format != "onnx":
        return findings
    already = sorted(ALREADY_QUANTIZED_OPS.intersection(problem.operators))
    if already:
        findings.append(
            _error(
                "already-quantized",
                f"the model already holds quantized operators ({', '.join(already)})",
                "set precision: f32, or start from the fp32 model",
            )
        )
    if not QUANTIZABLE_OPS.intersection(problem.operators):
        findings.append(
            _error(
                "nothing-to-quantize",
                "NNCF quantizes Conv, ConvTranspose, MatMul and Gemm layers and this model has "
                f"none (operators: {', '.join(problem.operators)}): nothing would run in int8",
                "use precision f32",
            )
        )
    if cfg.calibration_samples > problem.n_samples:
        findings.append(
            Finding(
                severity=Severity.WARNING,
                code="few-calibration-samples",
                message=f"calibration asks for {cfg.calibration_samples} samples but the "
                f"dataset has {problem.n_samples}; all of them will be used",
            )
        )
    return findings


def thread_findings(cfg: OpenVinoConfig, target: TargetInfo) -> list[Finding]:
    """Streams and threads the plugin would lower without saying so."""
    findings: list[Finding] = []
    cores = target.cores
    for name, value in (("streams", cfg.streams), ("threads", cfg.threads)):
        if isinstance(value, int) and cores is not None and value > cores:
            findings.append(
                Finding(
                    severity=Severity.WARNING,
                    code=f"{name}-above-cores",
                    message=f"{name}: {value} exceeds the {cores} core(s) of {target.name}; "
                    "OpenVINO lowers it (the run records the value it used)",
                    fix=f"set {name} to at most {cores}",
                )
            )
    if isinstance(cfg.streams, int) and cfg.threads is not None and cfg.streams > cfg.threads:
        findings.append(
            Finding(
                severity=Severity.WARNING,
                code="streams-above-threads",
                message=f"streams: {cfg.streams} with threads: {cfg.threads}; each stream needs "
                "a thread, so OpenVINO runs fewer streams",
                fix="give at least one thread per stream",
            )
        )
    return findings


def model_findings(problem: ResolvedProblem, steps: Sequence[WorkflowStep]) -> list[Finding]:
    """Convert the model as the workflow's convert step will and ask the plugin which layers
    it supports. A workflow that exports to ONNX first is checked when it runs."""
    import openvino as ov  # type: ignore[import-untyped]

    from deploybench.toolchains.openvino.steps import OvConvertStep, convert_to_openvino

    if not steps or not isinstance(steps[0], OvConvertStep):
        return []
    version = distribution_version("openvino") or ov.__version__
    artifact = ModelArtifact(problem.model_format, problem.model_path)
    try:
        model = convert_to_openvino(problem, artifact)
    except Exception as exc:  # the frontends raise several unrelated exception classes
        return [_conversion_error(str(exc), type(exc).__name__, version)]
    findings: list[Finding] = []
    for port in model.inputs:
        findings.extend(_shape_findings(port))
    if any(f.severity is Severity.ERROR for f in findings):
        return findings
    supported = ov.Core().query_model(model, DEVICE)
    missing = sorted(
        {
            op.get_type_name()
            for op in model.get_ordered_ops()
            if op.get_friendly_name() not in supported
        }
    )
    if missing:
        findings.append(
            _error(
                "unsupported-op",
                f"the OpenVINO {version} {DEVICE} plugin has no kernel for: {', '.join(missing)}",
                "replace these layers, or pick another toolchain",
                ", ".join(missing),
            )
        )
    return findings


def _conversion_error(text: str, kind: str, version: str) -> Finding:
    match = _UNCONVERTED.search(text)
    if match:
        ops = match.group(1).strip()
        return _error(
            "unsupported-op",
            f"OpenVINO {version} cannot convert these ONNX operators: {ops}",
            "replace them with standard ONNX operators, or pick another toolchain",
            ops,
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = lines[-1] if lines else kind
    return _error(
        "conversion-failed",
        f"OpenVINO {version} cannot convert the model: {detail}",
        "check that the model loads in onnxruntime; re-export it with a supported opset",
    )


def _shape_findings(port: Any) -> list[Finding]:
    name = port.get_any_name()
    shape = port.get_partial_shape()
    if shape.rank.is_dynamic:
        return [
            _error(
                "dynamic-rank",
                f"input '{name}' has no known rank; the {DEVICE} plugin needs the number of "
                "dimensions",
                "export the model with input shapes (e.g. [N, 64])",
                name,
            )
        ]
    dynamic = [i for i, dim in enumerate(shape) if i > 0 and dim.is_dynamic]
    if not dynamic:
        return []
    return [
        Finding(
            severity=Severity.INFO,
            code="dynamic-shape",
            subject=name,
            message=f"input '{name}' has dynamic dimension(s) {dynamic} besides the batch "
            f"({shape}); the plugin compiles for dynamic shapes, which is slower",
            fix="export the model with fixed non-batch dimensions",
        )
    ]
