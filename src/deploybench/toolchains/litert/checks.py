"""Compatibility checks of the LiteRT toolchain, run before anything is built."""

from __future__ import annotations

from deploybench.problems.resolved import ResolvedProblem
from deploybench.targets.base import TargetInfo
from deploybench.toolchains.base import Finding, Severity
from deploybench.toolchains.envs.environments import environment_key, envs_root, read_environment
from deploybench.toolchains.litert.config import LiteRtConfig
from deploybench.toolchains.litert.conversion import CONVERTER_REQUIREMENTS

# Layers ai-edge-quantizer's dynamic-range recipe gives int8 weights (torch names).
QUANTIZABLE_OPS = frozenset({"Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose2d"})
WIDE_DTYPES = {"float64": "float32", "int64": "int32"}


def format_findings(problem: ResolvedProblem, target: TargetInfo) -> list[Finding]:
    """PyTorch models only, on targets that run Python sessions."""
    if problem.model_format != "torch" or problem.torch_module is None:
        return [
            Finding(
                severity=Severity.ERROR,
                code="unsupported-format",
                message=f"the litert toolchain converts PyTorch models (a state dict plus its "
                f"module class) with litert-torch, not {problem.model_format}",
                fix="give the PyTorch model (model.format: torch, path, module, inputs), or "
                "use the onnxruntime, openvino or tvm toolchain for ONNX models",
            )
        ]
    if "python-session" not in target.executes:
        return [
            Finding(
                severity=Severity.ERROR,
                code="target-cannot-run-python",
                message=f"target '{target.name}' cannot run a Python LiteRT session",
                fix="pick a host target such as 'local'",
            )
        ]
    return []


def tensor_findings(problem: ResolvedProblem) -> list[Finding]:
    """Only the batch dimension may be symbolic; 64-bit tensors become 32-bit."""
    findings: list[Finding] = []
    for spec in problem.inputs:
        symbolic = [i for i, d in enumerate(spec.shape) if i > 0 and not isinstance(d, int)]
        if not spec.shape or symbolic:
            findings.append(
                Finding(
                    severity=Severity.ERROR,
                    code="dynamic-shape",
                    subject=spec.name,
                    message=f"input {spec.render()}: litert-torch converts at fixed shapes; "
                    "only the first (batch) dimension may be symbolic",
                    fix="declare every other dimension of the input as a number",
                )
            )
    for spec in [*problem.inputs, *problem.outputs]:
        if spec.dtype in WIDE_DTYPES:
            findings.append(
                Finding(
                    severity=Severity.WARNING,
                    code="64-bit-computed-in-32-bit",
                    subject=spec.name,
                    message=f"{spec.render()}: litert-torch converts {spec.dtype} tensors to "
                    f"{WIDE_DTYPES[spec.dtype]}; the session casts outputs back to the "
                    "declared dtype",
                    fix="export the model in 32-bit types to compare like with like",
                )
            )
    return findings


def config_findings(
    problem: ResolvedProblem, target: TargetInfo, cfg: LiteRtConfig
) -> list[Finding]:
    """Quantization fit, threads above cores, fixed batch, converter environment."""
    findings: list[Finding] = []
    if cfg.quantization == "dynamic-int8" and not QUANTIZABLE_OPS.intersection(problem.operators):
        findings.append(
            Finding(
                severity=Severity.WARNING,
                code="nothing-to-quantize",
                message="dynamic-range quantization gives int8 weights to fully connected "
                f"and convolution layers and this model has none (layers: "
                f"{', '.join(problem.operators)})",
                fix="use quantization: none",
            )
        )
    if cfg.threads is not None and target.cores is not None and cfg.threads > target.cores:
        findings.append(
            Finding(
                severity=Severity.WARNING,
                code="threads-above-cores",
                message=f"threads: {cfg.threads} exceeds the {target.cores} core(s) of "
                f"{target.name}",
                fix=f"set threads to at most {target.cores}",
            )
        )
    if cfg.batch > 1:
        findings.append(
            Finding(
                severity=Severity.INFO,
                code="fixed-batch",
                message=f"the model is converted at a fixed batch of {cfg.batch}: batches "
                "must be multiples of it (a larger one runs as several invocations)",
            )
        )
    if (
        read_environment(envs_root() / environment_key(CONVERTER_REQUIREMENTS, share_main=True))
        is None
    ):
        findings.append(
            Finding(
                severity=Severity.INFO,
                code="converter-environment",
                message="the first build installs litert-torch "
                f"({', '.join(CONVERTER_REQUIREMENTS)}) into its own environment: about "
                "2 GB on disk and one to two minutes",
            )
        )
    return findings
